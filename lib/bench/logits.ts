// `benchmark logits`: the engine's float32 logits [tokens, vocab] of every position, written to a file (reference checks).
//   bun scripts/benchmark.ts logits --artifacts DIR --tokens 1,2,3 --out logits.f32
import { defineCommand } from "citty";
import { resolve } from "pathe";
import { UserError } from "../errors.ts";
import { engineRunArgs, engineRunArgv, runEngineBatch } from "./_engine-process.ts";

/** "1,2,3" -> [1, 2, 3]; a UserError names the bad entry. */
export function parseTokenList(s: string): number[] {
  const parts = s.split(",").map((p) => p.trim());
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d+$/.test(p)) throw new UserError(`--tokens: "${p}" is not a token id (expected e.g. 1,2,3)`, undefined, 2);
    out.push(Number(p));
  }
  if (!out.length) throw new UserError("--tokens: no tokens given", undefined, 2);
  return out;
}

/** Compute the logits of `tokens` with the engine on `artifactsDir` into `outPath`. */
export async function writeEngineLogits(opts: { artifactsDir: string; tokens: number[]; outPath: string; expertsDir?: string; threads?: string; backend?: string; binary?: string }): Promise<void> {
  const argv = ["logits", ...engineRunArgv({ artifacts: opts.artifactsDir, experts: opts.expertsDir, threads: opts.threads, backend: opts.backend })];
  argv.push("--tokens", opts.tokens.join(","), "--out", resolve(opts.outPath));
  await runEngineBatch(argv, opts.binary);
}

export default defineCommand({
  meta: { name: "logits", description: "Write the engine's float32 logits [tokens, vocab] for given tokens" },
  args: {
    ...engineRunArgs,
    tokens: { type: "string", description: "Token ids, comma-separated", valueHint: "1,2,3", required: true },
    out: { type: "string", description: "Output file (little-endian float32, row-major)", valueHint: "FILE", required: true },
  },
  async run({ args }) {
    await writeEngineLogits({
      artifactsDir: args.artifacts,
      tokens: parseTokenList(args.tokens),
      outPath: args.out,
      expertsDir: args.experts,
      threads: args.threads,
      backend: args.backend,
      binary: args.binary,
    });
  },
});
