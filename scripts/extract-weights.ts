#!/usr/bin/env bun
// Extract every non-expert tensor of a checkpoint into model_weights.bin + model_weights.json (native/ARTIFACTS.md).
//   bun scripts/extract-weights.ts --model ~/models/Qwen3.5-397B-A17B-4bit --out ~/models/artifacts/qwen397
//   bun scripts/extract-weights.ts --model ./Qwen3.6-35B-A3B --out ./artifacts/q36 --bits 4   # HF bf16: quantized here
import { defineCommand } from "citty";
import { resolve } from "pathe";
import { globalArgs, runScript } from "../lib/cli.ts";
import { logger } from "../lib/log.ts";
import { checkpointArgs, parseBitsArg, requireDirArg } from "../lib/model/cli-args.ts";
import { extractWeights } from "../lib/model/extract.ts";
import { formatBytes } from "../lib/format.ts";

const command = defineCommand({
  meta: { name: "extract-weights", description: "Write the dense (non-expert) weights of a checkpoint for the engine" },
  args: {
    ...globalArgs,
    ...checkpointArgs,
    bits: { type: "string", description: "Hugging Face bf16 sources: quantize linears to 2, 4 or 8 bits (default 4; routers stay 8)", valueHint: "N" },
  },
  async run({ args }) {
    const checkpointDir = requireDirArg(args.model, "--model", "the checkpoint folder (config.json + *.safetensors)");
    const outDir = resolve(requireDirArg(args.out, "--out", "the artifacts folder to write", false));
    const r = await extractWeights({ checkpointDir, outDir, bits: parseBitsArg(args.bits) });
    logger.success(`${r.tensors} tensors, ${formatBytes(r.bytes)} in ${r.seconds.toFixed(1)}s (${formatBytes(r.bytes / Math.max(r.seconds, 1e-9))}/s) -> ${r.weightsBin}`);
  },
});

export default command;
if (import.meta.main) await runScript(command);
