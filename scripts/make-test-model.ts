#!/usr/bin/env bun
// Generate a random-weight Qwen3.5-MoE checkpoint in MLX layout (config.json, sharded safetensors, index), deterministic from a seed.
//   bun scripts/make-test-model.ts --preset tiny --out /tmp/tiny
//   bun scripts/make-test-model.ts --preset demo --out ./models/demo          # with the bundled Qwen3 tokenizer
//   bun scripts/make-test-model.ts --preset qwen35-397b --layers 2 --out /data/q397-2l   # real dimensions, 2 layers (~8.5 GB)
//   bun scripts/make-test-model.ts --preset qwen36-35b --layers 2 --format hf-bf16 --out /data/q36-2l-bf16
import { defineCommand } from "citty";
import { resolve } from "pathe";
import { globalArgs, parseIntFlag, runScript } from "../lib/cli.ts";
import { logger } from "../lib/log.ts";
import { parseBitsArg, requireDirArg } from "../lib/model/cli-args.ts";
import { formatBytes } from "../lib/format.ts";
import { bundledQwenTokenizerDir, TEST_MODEL_PRESETS, writeTestModel } from "../lib/model/test-model.ts";

const command = defineCommand({
  meta: { name: "make-test-model", description: "Write a generated test checkpoint (MLX layout) of the Qwen3.5-MoE family" },
  args: {
    ...globalArgs,
    preset: { type: "string", description: `Dimensions: ${Object.keys(TEST_MODEL_PRESETS).join(", ")} (default tiny)`, valueHint: "NAME" },
    out: { type: "string", description: "Folder to write the checkpoint into", valueHint: "DIR" },
    seed: { type: "string", description: "Random seed (default 0): same seed, same bytes", valueHint: "N" },
    layers: { type: "string", description: "Keep only the first N layers", valueHint: "N" },
    bits: { type: "string", description: "Bits of the quantized linears: 2, 4 or 8 (default 4; routers 8)", valueHint: "N" },
    format: { type: "string", description: "mlx (default, as mlx-community publishes) or hf-bf16 (unquantized Hugging Face layout)", valueHint: "FORMAT" },
    shardMb: { type: "string", description: "Largest shard in MB (default 5000)", valueHint: "MB" },
    tokenizer: { type: "string", description: "Copy tokenizer files from this folder (demo: the bundled Qwen3 tokenizer)", valueHint: "DIR" },
  },
  async run({ args }) {
    const outDir = resolve(requireDirArg(args.out, "--out", "the folder to write the checkpoint into", false));
    const preset = args.preset ?? "tiny";
    const tokenizerDir = args.tokenizer ? requireDirArg(args.tokenizer, "--tokenizer", "a folder with tokenizer.json") : preset === "demo" ? bundledQwenTokenizerDir() : undefined;
    const shardMb = parseIntFlag(args.shardMb, "--shard-mb");
    const r = await writeTestModel({
      outDir, dims: preset, seed: parseIntFlag(args.seed, "--seed", 0) ?? 0, layers: parseIntFlag(args.layers, "--layers"), bits: parseBitsArg(args.bits),
      shardBytes: shardMb ? shardMb * 1e6 : undefined, tokenizerDir, format: args.format as "mlx" | "hf-bf16" | undefined,
    });
    logger.success(`${preset}: ${r.tensors} tensors, ${formatBytes(r.bytes)} in ${r.shards.length} shard(s), ${r.seconds.toFixed(1)}s -> ${r.dir}`);
  },
});

export default command;
if (import.meta.main) await runScript(command);
