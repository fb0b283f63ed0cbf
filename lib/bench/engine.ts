// Engine benchmark targets (run, verify, bench, moe, moebench, full, fullbench, prefill, kernels): each runs
// `flashchat-engine bench MODE`, which prints time per op, GB/s, and for moe/full both ceilings (kernel, memory).
//   bun scripts/benchmark.ts fullbench --artifacts DIR [--threads 2] [--iters 20] [--json]
import { type ArgsDef, type CommandDef, defineCommand } from "citty";
import { globalArgs, modelArgs, yesArgs } from "../cli.ts";
import { loadFlashchatConfig } from "../config/index.ts";
import { UserError } from "../errors.ts";
import { engineRunArgs, engineRunArgv, runEngineBatch } from "./_engine-process.ts";

export const ENGINE_BENCH_MODES = {
  run: "One expert forward pass: pread time and compute time per op, GB/s",
  verify: "Optimized kernels (every level this CPU has) against the plain C reference, on the model's matrices",
  bench: "One expert, 10 iterations: time per op and GB/s",
  moe: "One MoE layer with K experts: time, GB/s, kernel and memory ceilings",
  moebench: "One MoE layer with K experts, 10 iterations: time, GB/s, ceilings",
  full: "The whole model for one token: time, GB/s, ceilings",
  fullbench: "Whole-model decode, 32 tokens after 2 warm-up: tok/s median with p10-p90, per-layer time and bytes, expert I/O (page-cache hits), ceilings",
  prefill: "Prefill of --prompt N tokens (default 512) from an empty context: tok/s, the compute ceiling, time per kind of product",
  kernels: "Synthetic single-core 2/4/8-bit matvec GB/s (cache and memory), int8 product GMAC/s and vpdpbusd peak, memcpy GB/s; needs no model",
  membw: "Memory read bandwidth with 1..N threads (a read-only stream, decode's ceiling) and the measured clock; needs no model",
} as const;

export type EngineBenchMode = keyof typeof ENGINE_BENCH_MODES;

const benchArgs = {
  iters: { type: "string", description: "Iterations (default 1 for run/moe/full, 10 for bench/moebench, 32 for fullbench; membw: runs per thread count, default 7)", valueHint: "N" },
  layer: { type: "string", description: "Layer to measure (run/bench/verify/moe/moebench; default 0)", valueHint: "L" },
  prompt: { type: "string", description: "prefill: prompt tokens (default 512; the context grows to fit)", valueHint: "N" },
  json: { type: "boolean", description: "Print one JSON line instead of text" },
} as const satisfies ArgsDef;

/** Run one benchmark mode; returns the engine's stdout when `capture`, else prints it. */
export async function runEngineBench(
  mode: EngineBenchMode,
  a: Record<string, string | boolean | undefined>,
  capture = false,
): Promise<string> {
  const argv = ["bench", mode];
  const modelless = mode === "kernels" || mode === "membw";
  if (!modelless) argv.push(...engineRunArgv(a as Record<string, string | undefined>));
  else if (mode === "membw" && a.threads !== undefined) {
    if (!/^[1-9]\d*$/.test(String(a.threads))) throw new UserError(`--threads must be a positive integer, not "${a.threads}"`, undefined, 2);
    argv.push("--threads", String(a.threads));
  }
  for (const [flag, v] of [["--iters", a.iters], ["--layer", a.layer], ["--prompt", a.prompt]] as const) {
    if (v === undefined) continue;
    if (!/^\d+$/.test(String(v))) throw new UserError(`${flag} must be a non-negative integer, not "${v}"`, undefined, 2);
    argv.push(flag, String(v));
  }
  if (mode === "prefill" && a.prompt !== undefined && Number(a.prompt) > 4096) argv.push("--context", String(a.prompt));
  if (a.json) argv.push("--json");
  return runEngineBatch(argv, typeof a.binary === "string" ? a.binary : undefined, capture ? "pipe" : "inherit");
}

/** --artifacts given: that folder; else the model's (--model or MODEL_REPO), set up first when something is missing. */
async function withModelArtifacts(args: Record<string, string | boolean | undefined>): Promise<Record<string, string | boolean | undefined>> {
  if (args.artifacts) return args;
  const config = await loadFlashchatConfig({
    configFile: args.config as string | undefined,
    overrides: { MODEL_REPO: args.model as string | undefined },
    flagNames: { MODEL_REPO: "--model" },
  });
  const target = await (await import("../setup/index.ts")).ensureReady(config, { yes: Boolean(args.yes) });
  return { ...args, artifacts: target.artifactsDir, experts: (args.experts as string | undefined) ?? target.expertsDir, backend: (args.backend as string | undefined) ?? config.backend };
}

function benchCommand(mode: EngineBenchMode): CommandDef<ArgsDef> {
  const needsModel = mode !== "kernels" && mode !== "membw";
  return defineCommand({
    meta: { name: mode, description: ENGINE_BENCH_MODES[mode] },
    args: {
      ...globalArgs,
      ...(needsModel
        ? {
            ...modelArgs,
            ...yesArgs,
            ...engineRunArgs,
            artifacts: { type: "string", description: "Artifacts folder (default: the model's, --model or MODEL_REPO, set up first when missing)", valueHint: "DIR" },
          }
        : { binary: engineRunArgs.binary, ...(mode === "membw" ? { threads: { type: "string", description: "Most threads to measure (default: all cores)", valueHint: "N" } } : {}) }),
      ...benchArgs,
    },
    async run({ args }) {
      const a = args as Record<string, string | boolean | undefined>;
      await runEngineBench(mode, needsModel ? await withModelArtifacts(a) : a);
    },
  }) as CommandDef<ArgsDef>;
}

export const run = benchCommand("run");
/**
 * verify also runs without --artifacts (what a new machine's owner runs after `make`): on the configured model
 * (or --model), set up first when something is missing, like chat and serve.
 */
export const verify = defineCommand({
  meta: { name: "verify", description: ENGINE_BENCH_MODES.verify },
  args: {
    ...globalArgs,
    ...modelArgs,
    ...yesArgs,
    ...engineRunArgs,
    artifacts: { type: "string", description: "Artifacts folder (default: the model's, set up first when missing)", valueHint: "DIR" },
    ...benchArgs,
  },
  async run({ args }) {
    await runEngineBench("verify", await withModelArtifacts(args as Record<string, string | boolean | undefined>));
  },
}) as CommandDef<ArgsDef>;
export const bench = benchCommand("bench");
export const moe = benchCommand("moe");
export const moebench = benchCommand("moebench");
export const full = benchCommand("full");
export const fullbench = benchCommand("fullbench");
export const prefill = benchCommand("prefill");
export const kernels = benchCommand("kernels");
export const membw = benchCommand("membw");

export default { run, verify, bench, moe, moebench, full, fullbench, prefill, kernels, membw };
