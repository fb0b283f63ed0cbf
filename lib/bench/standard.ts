// `benchmark standard` (make bench): generate (or reuse) bench models with the real Qwen3.5-397B and Qwen3.6-35B
// dimensions sliced to a few layers, run the engine targets and the end-to-end target on each, print medians beside
// their ceilings, and append everything to the results history.
//   bun scripts/benchmark.ts standard [--shape qwen3.6-35b-4l] [--runs 5] [--no-e2e] [--regenerate] [--remeasure]
import { copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, closeSync, rmSync } from "node:fs";
import { defineCommand } from "citty";
import { join, resolve } from "pathe";
import { globalArgs, jsonArgs, parseIntFlag } from "../cli.ts";
import { loadFlashchatConfig } from "../config/index.ts";
import type { ResolvedConfig } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { writeFileAtomic } from "../fs.ts";
import { logger } from "../log.ts";
import { extractWeights } from "../model/extract.ts";
import { checkFreeDisk } from "../fs.ts";
import { repackExperts } from "../model/repack.ts";
import { bundledQwenTokenizerDir, describeTestModel, resolveTestModelDims, writeTestModel } from "../model/test-model.ts";
import { DTYPE_BYTES, elementCount } from "../model/safetensors.ts";
import { type EngineBenchMode, runEngineBench } from "./engine.ts";
import { AGENT_SIZES, parseSizes, runAgentTarget } from "./agent.ts";
import { renderE2eTable, runE2eTarget } from "./e2e.ts";
import { type BenchRecord, appendHistory, historyPath } from "./history.ts";
import { checkMachineLoad, type LoadProfileOptions, loadGitCommit, loadMachineInfo, loadMachineProfile, renderProfile } from "./machine.ts";
import { renderBenchTable } from "./report.ts";
import { type Ceilings, loadTokenBytes, renderBytes, resolveCeilings } from "./roofline.ts";
import { type Summary, formatNumber, summarize } from "./stats.ts";

export interface BenchShape {
  /** name in tables and the history */
  name: string;
  /** make-test-model preset */
  preset: string;
  layers: number;
  description: string;
  /** tokenizer files to ship with the model (default: the bundled Qwen3 tokenizer; its ids fit both vocabularies) */
  tokenizerDir?: string;
  /** conversation sizes of the agent target (default AGENT_SIZES) */
  agentSizes?: readonly number[];
}

/**
 * The standard bench models. Layer counts keep `make bench` within minutes on 2 cores and the 397B model's disk
 * footprint near 8.5 GB (512 experts of 7 MB per layer); the 35B model keeps 4 layers so a full-attention layer is in.
 */
export const BENCH_SHAPES: readonly BenchShape[] = [
  // no full-attention layer in 2 layers, so a 32k conversation adds only prefill time: its agent row is 8k only
  { name: "qwen3.5-397b-2l", preset: "qwen35-397b", layers: 2, description: "Qwen3.5-397B-A17B dimensions, first 2 layers", agentSizes: [8192] },
  { name: "qwen3.6-35b-4l", preset: "qwen36-35b", layers: 4, description: "Qwen3.6-35B-A3B dimensions, first 4 layers" },
];

const repoRoot = join(import.meta.dir, "..", "..");

/**
 * Sources whose change makes a cached bench model stale: the generator (it decides every byte). Changes to the artifact
 * writers do not regenerate 11 GB: their output format is versioned and checked by the engine; --regenerate forces it.
 */
const GENERATOR_SOURCES = ["lib/model/test-model.ts"];

export interface BenchModel {
  shape: BenchShape;
  artifactsDir: string;
  tokenizerDir: string;
  reused: boolean;
}

interface BenchModelStamp {
  preset: string;
  layers: number;
  seed: number;
  sources: string;
}

function resolveStamp(shape: BenchShape, seed: number): BenchModelStamp {
  const h = new Bun.CryptoHasher("sha256");
  for (const f of GENERATOR_SOURCES) {
    const p = join(repoRoot, f);
    h.update(existsSync(p) ? readFileSync(p) : f);
  }
  return { preset: shape.preset, layers: shape.layers, seed, sources: h.digest("hex").slice(0, 16) };
}

/** Bytes of the generated checkpoint of a shape (before extraction). */
export function checkpointBytes(shape: BenchShape): number {
  return describeTestModel(resolveTestModelDims(shape.preset, shape.layers)).reduce((a, s) => a + elementCount(s.shape) * DTYPE_BYTES[s.dtype]!, 0);
}

/**
 * The artifacts of a bench model in `modelsDir/<name>/`: reused when they were made from the same preset, layers,
 * seed and generator sources; else generated (checkpoint in a temp folder, extracted, repacked, checkpoint deleted).
 */
export async function prepareBenchModel(shape: BenchShape, modelsDir: string, opts: { regenerate?: boolean; seed?: number } = {}): Promise<BenchModel> {
  const dir = join(modelsDir, shape.name);
  const artifactsDir = join(dir, "artifacts");
  const tokenizerDir = join(dir, "tokenizer");
  const stampPath = join(dir, "bench-model.json");
  const stamp = resolveStamp(shape, opts.seed ?? 0);
  if (!opts.regenerate && existsSync(stampPath)) {
    try {
      if (JSON.stringify(JSON.parse(readFileSync(stampPath, "utf8"))) === JSON.stringify(stamp)) return { shape, artifactsDir, tokenizerDir, reused: true };
    } catch {
      // unreadable stamp: regenerate
    }
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const ckptBytes = checkpointBytes(shape);
  checkFreeDisk(dir, 2 * ckptBytes, `the ${shape.name} bench model (checkpoint and artifacts)`);
  const ckpt = join(dir, "checkpoint.tmp");
  logger.info(`${shape.name}: generating a ${renderBytes(ckptBytes)} checkpoint (${shape.description}); its artifacts are kept in ${dir} for the next runs`);
  await writeTestModel({ outDir: ckpt, dims: shape.preset, layers: shape.layers, seed: opts.seed ?? 0, tokenizerDir: shape.tokenizerDir ?? bundledQwenTokenizerDir() });
  await extractWeights({ checkpointDir: ckpt, outDir: artifactsDir, repo: `bench/${shape.name}` });
  await repackExperts({ checkpointDir: ckpt, outDir: artifactsDir, repo: `bench/${shape.name}` });
  mkdirSync(tokenizerDir, { recursive: true });
  for (const f of readdirSync(ckpt)) if (f.startsWith("tokenizer") || f.endsWith(".jinja")) copyFileSync(join(ckpt, f), join(tokenizerDir, f));
  rmSync(ckpt, { recursive: true, force: true });
  writeFileAtomic(stampPath, `${JSON.stringify(stamp)}\n`);
  return { shape, artifactsDir, tokenizerDir, reused: false };
}

/** Read every file under `dir` once, so the page cache holds it (a warm-cache run). */
export function warmPageCache(dir: string): number {
  const buf = Buffer.allocUnsafe(8 * 2 ** 20);
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const fd = openSync(join(e.parentPath, e.name), "r");
    try {
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n <= 0) break;
        total += n;
      }
    } finally {
      closeSync(fd);
    }
  }
  return total;
}

/** One JSON line of `flashchat-engine bench MODE --json`. */
export type EngineBenchResult = Record<string, unknown> & { mode: string };

/** Run `flashchat-engine bench MODE --json` once and parse its line. */
export async function runEngineBenchJson(
  mode: EngineBenchMode,
  o: { artifactsDir: string; threads?: number | null; activeExperts?: number | null; binary?: string; prompt?: number; iters?: number },
): Promise<EngineBenchResult> {
  const flags = {
    artifacts: o.artifactsDir,
    threads: o.threads ? String(o.threads) : undefined,
    activeExperts: o.activeExperts ? String(o.activeExperts) : undefined,
    prompt: o.prompt ? String(o.prompt) : undefined,
    iters: o.iters ? String(o.iters) : undefined,
  };
  const out = await runEngineBench(mode, { ...flags, binary: o.binary, json: true }, true);
  const line = out.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line) as EngineBenchResult;
  } catch {
    throw new Error(`flashchat-engine bench ${mode} printed no JSON: ${line.slice(0, 200)}`);
  }
}

/** Run an engine benchmark `runs` times (after `warmup` discarded runs) and summarise the given numeric fields. */
export async function repeatEngineBench(
  mode: EngineBenchMode,
  fields: readonly string[],
  o: { artifactsDir: string; threads?: number | null; activeExperts?: number | null; runs: number; warmup: number; binary?: string; prompt?: number; iters?: number },
): Promise<{ stats: Record<string, Summary>; last: EngineBenchResult }> {
  const results: EngineBenchResult[] = [];
  for (let i = 0; i < o.warmup + o.runs; i++) {
    const r = await runEngineBenchJson(mode, o);
    if (i >= o.warmup) results.push(r);
  }
  const stats: Record<string, Summary> = {};
  for (const f of fields) {
    const xs = results.map((r) => r[f]).filter((x): x is number => typeof x === "number" && Number.isFinite(x));
    if (xs.length) stats[f] = summarize(xs);
  }
  return { stats, last: results.at(-1)! };
}

export interface StandardOptions {
  shapes: readonly BenchShape[];
  modelsDir: string;
  /** measured runs of each engine target (each a whole process with its own iterations) */
  runs: number;
  warmup: number;
  e2e: boolean;
  e2eRuns: number;
  cold: boolean;
  regenerate: boolean;
  remeasure: boolean;
  history: boolean;
  engineBinary?: string;
  /** how to measure the machine when its figures are not cached (tests use small probes) */
  machine?: LoadProfileOptions;
  /** prefill prompt lengths in tokens (default 512 and 8192; the long one runs once, without a warm-up pass) */
  prefillTokens?: readonly number[];
  /** e2e prompt sizes (default 12 and 200 words, 16 generated tokens) */
  e2eShortWords?: number;
  e2eLongWords?: number;
  e2eDecodeTokens?: number;
  /** the agent target (turns 1 and 2 of a conversation, lib/bench/agent.ts) at these sizes (default: the shape's); empty = skip it */
  agentSizes?: readonly number[];
}

export interface StandardRow {
  model: string;
  target: string;
  figure: string;
  unit: string;
  stats: Summary;
  ceilings?: Partial<Ceilings>;
}

/** The standard set; returns every figure (also appended to the history) and the rendered tables. */
export async function runStandard(config: ResolvedConfig, o: StandardOptions) {
  mkdirSync(o.modelsDir, { recursive: true });
  const busy = checkMachineLoad();
  if (busy) logger.warn(busy);
  const profile = await loadMachineProfile(config, { ...o.machine, remeasure: o.remeasure, diskDir: o.modelsDir });
  const base = { date: new Date().toISOString(), commit: await loadGitCommit(), machine: loadMachineInfo() };
  const rows: StandardRow[] = [];
  const e2eTables: string[] = [];
  const agentTables: string[] = [];
  const failures: string[] = [];
  const binary = o.engineBinary;
  const engine = { threads: config.threads, activeExperts: config.activeExperts, runs: o.runs, warmup: o.warmup, binary };
  for (const shape of o.shapes) {
    const model = await prepareBenchModel(shape, o.modelsDir, { regenerate: o.regenerate });
    const bytes = loadTokenBytes(model.artifactsDir, { k: config.activeExperts });
    logger.info(`${shape.name}: ${renderBytes(bytes.denseBytes)} dense + ${renderBytes(bytes.expertBytesUsed)} of experts per token (K=${bytes.k}, ${bytes.moeLayers} layers)`);
    warmPageCache(model.artifactsDir);
    logger.info(`${shape.name}: engine targets (${o.warmup} warm-up + ${o.runs} runs each)`);
    const one = await repeatEngineBench("bench", ["compute_ms", "gbps", "read_gbps"], { ...engine, artifactsDir: model.artifactsDir });
    const moe = await repeatEngineBench("moebench", ["ms_per_op", "gbps"], { ...engine, artifactsDir: model.artifactsDir });
    const full = await repeatEngineBench("fullbench", ["ops_per_s", "ms_per_op", "gbps", "kernel_gbps_per_core"], { ...engine, artifactsDir: model.artifactsDir });
    const threads = typeof full.last.threads === "number" ? full.last.threads : (config.threads ?? base.machine.cores);
    const ceilings = resolveCeilings(bytes, {
      memoryGBs: profile.memory.allThreadsGBs.median,
      diskGBs: profile.disk.coldGBs?.median ?? null,
      kernelGBsPerCore: full.stats.kernel_gbps_per_core?.median ?? null,
      threads,
    });
    const add = (target: string, figure: string, unit: string, s: Summary | undefined, ceil?: Partial<Ceilings>) => {
      if (s) rows.push({ model: shape.name, target, figure, unit, stats: s, ceilings: ceil });
    };
    add("bench", "expert_ms", "ms", one.stats.compute_ms);
    add("bench", "expert_gb_s", "GB/s", one.stats.gbps);
    add("moebench", "layer_ms", "ms", moe.stats.ms_per_op);
    add("moebench", "layer_gb_s", "GB/s", moe.stats.gbps);
    add("fullbench", "decode_tok_s", "tok/s", full.stats.ops_per_s, { memory: ceilings.memory, kernel: ceilings.kernel });
    add("fullbench", "decode_gb_s", "GB/s", full.stats.gbps);
    add("fullbench", "kernel_gb_s_per_core", "GB/s", full.stats.kernel_gbps_per_core);
    // prefill from an empty context, beside the compute ceiling (threads x the measured vpdpbusd peak, where the CPU has one)
    for (const n of o.prefillTokens ?? [512, 8192]) {
      const long = n > 1024;
      const pf = await repeatEngineBench("prefill", ["tok_s", "compute_ceiling_tok_s"], {
        ...engine,
        runs: long ? 1 : o.runs,
        warmup: 0,
        iters: long ? 1 : 3,
        prompt: n,
        artifactsDir: model.artifactsDir,
      });
      const ceil = pf.stats.compute_ceiling_tok_s?.median;
      add("prefill", `pp${n}_tok_s`, "tok/s", pf.stats.tok_s, ceil ? { compute: ceil } : undefined);
    }
    if (o.e2e) {
      try {
        const r = await runE2eTarget(config, {
          artifactsDir: model.artifactsDir,
          tokenizerDir: model.tokenizerDir,
          model: shape.name,
          runs: o.e2eRuns,
          warmup: 1,
          decodeTokens: o.e2eDecodeTokens ?? 16,
          shortWords: o.e2eShortWords ?? 12,
          longWords: o.e2eLongWords ?? 200,
          machine: { ...o.machine, diskDir: o.modelsDir },
          cold: o.cold,
          history: false,
          kernelGBsPerCore: full.stats.kernel_gbps_per_core?.median ?? null,
          engineBinary: binary,
        });
        for (const rec of r.records) rows.push({ model: shape.name, target: rec.target, figure: rec.figure, unit: rec.unit, stats: rec.stats, ceilings: rec.ceilings });
        e2eTables.push(`${shape.name} — end to end through the server${r.cases.some((c) => c.cache === "cold") ? "" : ` (no cold runs: ${r.coldNote})`}\n${renderE2eTable(r, r.ceilings)}`);
      } catch (e) {
        // a server that cannot start is reported and the other models still run; anything else is a bug: crash
        if (!(e instanceof UserError)) throw e;
        failures.push(`${shape.name} e2e: ${e.message}`);
        logger.error(`${shape.name}: e2e failed: ${e.message}`);
      }
    }
    const agentSizes = o.agentSizes ?? shape.agentSizes ?? AGENT_SIZES;
    if (agentSizes.length > 0) {
      try {
        const r = await runAgentTarget(config, { artifactsDir: model.artifactsDir, tokenizerDir: model.tokenizerDir, model: shape.name, sizes: agentSizes, runs: 1, history: false, engineBinary: binary });
        for (const rec of r.records) rows.push({ model: shape.name, target: rec.target, figure: rec.figure, unit: rec.unit, stats: rec.stats });
        agentTables.push(`${shape.name} — an agent's turns 1 and 2 (time to first token; turn 2 resends turn 1 with a tool call and its result)\n${r.table}`);
      } catch (e) {
        if (!(e instanceof UserError)) throw e;
        failures.push(`${shape.name} agent: ${e.message}`);
        logger.error(`${shape.name}: agent failed: ${e.message}`);
      }
    }
  }
  const records: BenchRecord[] = rows.map((r) => ({ ...base, model: r.model, quantization: "4bit", target: r.target, figure: r.figure, unit: r.unit, stats: r.stats, ceilings: r.ceilings }));
  if (o.history) appendHistory(historyPath(config), records);
  return { profile, busy, rows, records, failures, table: renderStandardTable(rows), e2eTables, agentTables };
}

/** Engine figures as a table: median with its range, and decode beside the memory, disk and kernel ceilings. */
export function renderStandardTable(rows: readonly StandardRow[]): string {
  const pct = (x: number, c: number | null | undefined) => (c ? `${Math.round((100 * x) / c)}% of ${formatNumber(c)}` : "");
  const hasCompute = rows.some((r) => r.ceilings?.compute);
  return renderBenchTable(
    ["model", "target", "figure", "median", "min–max", "runs", "of mem ceiling", "of disk ceiling", "of kernel ceiling", ...(hasCompute ? ["of compute ceiling"] : [])],
    rows
      .filter((r) => r.target !== "e2e" && r.target !== "agent")
      .map((r) => [
        r.model,
        r.target,
        r.figure === "kernel_gb_s_per_core" ? "kernel GB/s per core" : `${r.figure.replace(/_tok_s$|_gb_s$|_ms$/, "")} ${r.unit}`,
        formatNumber(r.stats.median),
        `${formatNumber(r.stats.min)}–${formatNumber(r.stats.max)}`,
        String(r.stats.n),
        pct(r.stats.median, r.ceilings?.memory),
        pct(r.stats.median, r.ceilings?.disk),
        pct(r.stats.median, r.ceilings?.kernel),
        ...(hasCompute ? [pct(r.stats.median, r.ceilings?.compute)] : []),
      ]),
  );
}

const command = defineCommand({
  meta: { name: "standard", description: "The standard set on generated 397B- and 35B-shaped models (make bench)" },
  args: {
    ...globalArgs,
    ...jsonArgs,
    shape: { type: "string", description: `Only this bench model: ${BENCH_SHAPES.map((s) => s.name).join(", ")}`, valueHint: "NAME" },
    runs: { type: "string", description: "Measured runs of each engine target (default 3)", valueHint: "N" },
    warmup: { type: "string", description: "Warm-up runs of each engine target (default 1)", valueHint: "N" },
    e2e: { type: "boolean", description: "Also run the end-to-end target (default on; --no-e2e to skip)" },
    cold: { type: "boolean", description: "End-to-end runs with a cold page cache too (default on; --no-cold to skip)" },
    modelsDir: { type: "string", description: "Where bench models are generated and kept (default <data dir>/bench/models)", valueHint: "DIR" },
    regenerate: { type: "boolean", description: "Generate the bench models again even if cached ones are current" },
    remeasure: { type: "boolean", description: "Measure memory and disk bandwidth again instead of using the cached figures" },
    history: { type: "boolean", description: "Append the figures to the results history (default on; --no-history to skip)" },
    agentSizes: { type: "string", description: `Conversation sizes of the agent target in tokens (default ${AGENT_SIZES.join(",")}; "none" to skip)`, valueHint: "N,N" },
  },
  async run({ args }) {
    const config = await loadFlashchatConfig({ configFile: args.config });
    let shapes = BENCH_SHAPES;
    if (args.shape) {
      shapes = BENCH_SHAPES.filter((s) => s.name === args.shape);
      if (!shapes.length) throw new UserError(`unknown bench model "${args.shape}"`, `choose one of: ${BENCH_SHAPES.map((s) => s.name).join(", ")}`, 2);
    }
    const t0 = performance.now();
    const r = await runStandard(config, {
      shapes,
      modelsDir: args.modelsDir ? resolve(args.modelsDir) : join(config.paths.dataDir, "bench", "models"),
      runs: parseIntFlag(args.runs, "--runs", 2) ?? 3,
      warmup: parseIntFlag(args.warmup, "--warmup", 0) ?? 1,
      e2e: args.e2e !== false,
      e2eRuns: 3,
      cold: args.cold !== false,
      regenerate: Boolean(args.regenerate),
      remeasure: Boolean(args.remeasure),
      history: args.history !== false,
      agentSizes: args.agentSizes === "none" ? [] : parseSizes(args.agentSizes, "--agent-sizes"),
    });
    if (args.json) console.log(JSON.stringify({ profile: r.profile, rows: r.rows, failures: r.failures }, null, 2));
    else {
      console.log(renderProfile(r.profile));
      if (r.busy) console.log(`warning: ${r.busy}`);
      console.log("");
      console.log(r.table);
      for (const t of r.e2eTables) console.log(`\n${t}`);
      for (const t of r.agentTables) console.log(`\n${t}`);
      if (args.history !== false) console.log(`\nappended ${r.records.length} figures to ${historyPath(config)} (flashchat benchmark report charts them)`);
    }
    logger.info(`standard set done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    if (r.failures.length) throw new UserError(`${r.failures.length} target(s) failed: ${r.failures.join("; ")}`);
  },
});

export default command;
