#!/usr/bin/env bun
// Pack each MoE layer's experts into packed_experts/layer_NN.bin + layout.json for SSD streaming (native/ARTIFACTS.md).
//   bun scripts/repack-experts.ts --model ~/models/Qwen3.5-397B-A17B-4bit --out ~/models/artifacts/qwen397
//   bun scripts/repack-experts.ts --model ... --out ... --layers 0-4,7 --verify
//   bun scripts/repack-experts.ts --model ... --out ... --bits 2      # requantize into packed_experts_2bit/
import { defineCommand } from "citty";
import { resolve } from "pathe";
import { globalArgs, runScript } from "../lib/cli.ts";
import { logger } from "../lib/log.ts";
import { checkpointArgs, parseBitsArg, requireDirArg } from "../lib/model/cli-args.ts";
import { formatBytes } from "../lib/format.ts";
import { repackExperts } from "../lib/model/repack.ts";

const command = defineCommand({
  meta: { name: "repack-experts", description: "Pack expert weights for SSD streaming" },
  args: {
    ...globalArgs,
    ...checkpointArgs,
    bits: { type: "string", description: "Expert bits: default the checkpoint's (MLX) or 4 (HF bf16); 2 writes packed_experts_2bit/", valueHint: "N" },
    layers: { type: "string", description: "Only these layers, e.g. 0-4,7 (finished layers are skipped anyway)", valueHint: "LIST" },
    verify: { type: "boolean", description: "Compare every byte written against the checkpoint" },
  },
  async run({ args }) {
    const checkpointDir = requireDirArg(args.model, "--model", "the checkpoint folder (config.json + *.safetensors)");
    const outDir = resolve(requireDirArg(args.out, "--out", "the artifacts folder to write", false));
    const r = await repackExperts({ checkpointDir, outDir, bits: parseBitsArg(args.bits), layers: args.layers, verify: args.verify });
    const rate = r.seconds > 0 ? `${formatBytes(r.bytesWritten / r.seconds)}/s` : "-";
    logger.success(`${r.layersWritten.length} layer(s) written (${formatBytes(r.bytesWritten)} in ${r.seconds.toFixed(1)}s, ${rate}), ${r.layersSkipped.length} already done -> ${r.dir}`);
  },
});

export default command;
if (import.meta.main) await runScript(command);
