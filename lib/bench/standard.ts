// `benchmark standard` (make bench): generate (or reuse) bench models with the real Qwen3.5-397B and Qwen3.6-35B
// dimensions sliced to a few layers, run the engine targets and the end-to-end target on each, print medians beside
// their ceilings, and append everything to the results history.
//   bun scripts/benchmark.ts standard [--shape qwen3.6-35b-4l] [--runs 5] [--no-e2e] [--regenerate] [--no-remeasure]
import { copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, closeSync, rmSync, statSync } from "node:fs";
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
import { checkMachineLoad, type LoadProfileOptions, loadGitCommit, loadMachineInfo, loadMachineProfile, measureMemoryBandwidth, readBandwidthFor, renderProfile } from "./machine.ts";
import { renderBenchTable } from "./report.ts";
import { type Ceilings, loadTokenBytes, renderBytes, resolveCeilings, resolveDiskCeiling } from "./roofline.ts";
import { type Summary, formatNumber, formatSpread, invertSummary, summarize } from "./stats.ts";
import { type Extrapolation, type SliceFigures, layerKinds, medianSliceFigures, parseSliceFigures, renderExtrapolation, resolveExtrapolation, sliceTotal } from "./extrapolate.ts";

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

export interface EngineJsonOptions {
  artifactsDir: string;
  threads?: number | null;
  activeExperts?: number | null;
  binary?: string;
  prompt?: number;
  iters?: number;
  /** engine --expert-io (default auto) */
  expertIo?: string;
  /** engine --expert-cache-mb (pread only) */
  expertCacheMb?: number;
}

/** Run `flashchat-engine bench MODE --json` once and parse its line. */
export async function runEngineBenchJson(
  mode: EngineBenchMode,
  o: EngineJsonOptions,
): Promise<EngineBenchResult> {
  const flags = {
    artifacts: o.artifactsDir,
    expertIo: o.expertIo,
    expertCacheMb: o.expertCacheMb ? String(o.expertCacheMb) : undefined,
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
  o: EngineJsonOptions & { runs: number; warmup: number },
): Promise<{ stats: Record<string, Summary>; last: EngineBenchResult; results: EngineBenchResult[] }> {
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
  return { stats, last: results.at(-1)!, results };
}

export interface DecodeFigures {
  /** tok/s over every timed token of every run (1000 / ms of each forward pass) */
  tokS: Summary;
  /** GB/s of weights consumed, per token likewise */
  gbs: Summary;
  kernelGBsPerCore: Summary | null;
  threads: number;
  /** bytes one token reads (dense + K experts per layer, as the engine counts them) */
  bytesPerToken: number;
  expertIo: string;
  /** per-layer time and bytes (medians over the runs) */
  slice: SliceFigures | null;
  /** the same, per run */
  slices: SliceFigures[];
  /** the experts' I/O over the timed tokens of all runs */
  io: { tokens: number; reads: number; bytesRead: number; bytesCached: number; bytesFromDisk: number };
}

/**
 * Decode (fullbench) `runs` times, each a fresh engine with its own warm-up and iterations: every timed token of
 * every run pooled into one summary (median with p10–p90), per-layer medians, the experts' I/O summed.
 */
export async function runDecodeBench(o: EngineJsonOptions & { runs: number }): Promise<DecodeFigures> {
  const results: EngineBenchResult[] = [];
  for (let i = 0; i < o.runs; i++) results.push(await runEngineBenchJson("fullbench", o));
  const num = (r: EngineBenchResult, k: string) => (typeof r[k] === "number" ? (r[k] as number) : 0);
  const last = results.at(-1)!;
  const bytesPerToken = num(last, "bytes_per_op");
  const ms = results.flatMap((r) => (Array.isArray(r.token_ms) ? (r.token_ms as number[]) : [num(r, "ms_per_op")]));
  const msSummary = summarize(ms);
  const slices = results.map(parseSliceFigures).filter((x): x is SliceFigures => x !== null);
  const kernel = results.map((r) => num(r, "kernel_gbps_per_core")).filter((x) => x > 0);
  return {
    tokS: invertSummary(msSummary, 1000),
    gbs: invertSummary(msSummary, bytesPerToken / 1e6),
    kernelGBsPerCore: kernel.length ? summarize(kernel) : null,
    threads: num(last, "threads"),
    bytesPerToken,
    expertIo: typeof last.expert_io === "string" ? last.expert_io : "unknown",
    slice: slices.length ? medianSliceFigures(slices) : null,
    slices,
    io: {
      tokens: ms.length,
      reads: results.reduce((a, r) => a + num(r, "expert_reads"), 0),
      bytesRead: results.reduce((a, r) => a + num(r, "expert_bytes_read"), 0),
      bytesCached: results.reduce((a, r) => a + num(r, "expert_bytes_cached"), 0),
      bytesFromDisk: results.reduce((a, r) => a + num(r, "expert_bytes_from_disk"), 0),
    },
  };
}

/** Bytes of a model's expert files (packed_experts/layer_NN.bin). */
export function expertFileBytes(artifactsDir: string): number {
  const dir = join(artifactsDir, "packed_experts");
  return readdirSync(dir).filter((f) => f.endsWith(".bin")).reduce((a, f) => a + statSync(join(dir, f)).size, 0);
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
  /** timed decode tokens per fullbench run (default the engine's 32, after 2 warm-up) */
  decodeIters?: number;
  /** the streamed decode row (default on, Linux) */
  streamed?: boolean;
  /** e2e: tokens of the long prompt whose TTFT is measured end to end (default 8192; 0 = none) */
  e2eTtftTokens?: number;
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
  const layerTables: string[] = [];
  let computeNote = "";
  const prefillNotes: string[] = [];
  const memoryNotes: string[] = [];
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
    // decode in memory (--expert-io auto: the experts of these slices fit, so they are mapped and loaded up front)
    logger.info(`${shape.name}: decode, experts in memory (${o.runs} runs of ${o.decodeIters ?? 32} tokens after 2 warm-up)`);
    const full = await runDecodeBench({ ...engine, artifactsDir: model.artifactsDir, iters: o.decodeIters });
    const threads = full.threads || (config.threads ?? base.machine.cores);
    // the memory ceiling measured beside the decode it bounds (the neighbours of a shared machine move both within
    // minutes), not only at the start of the set
    const memoryNow = await measureMemoryBandwidth({ ...o.machine?.memory, threads, binary });
    const memoryGBs = readBandwidthFor(memoryNow, threads);
    memoryNotes.push(
      `${shape.name}: memory read ${formatNumber(memoryGBs)} GB/s on ${threads} thread${threads === 1 ? "" : "s"}, measured beside its decode (at the start of the set: ${formatNumber(readBandwidthFor(profile.memory, threads))})`,
    );
    const ceilings = resolveCeilings(bytes, {
      memoryGBs,
      diskGBs: profile.disk.coldGBs?.median ?? null,
      kernelGBsPerCore: full.kernelGBsPerCore?.median ?? null,
      threads,
    });
    const add = (target: string, figure: string, unit: string, s: Summary | undefined | null, ceil?: Partial<Ceilings>) => {
      if (!s) return;
      rows.push({ model: shape.name, target, figure, unit, stats: s, ceilings: ceil });
      // as it comes, so a run stopped half-way still shows what it measured
      logger.info(`${shape.name} ${target} ${figure}: ${formatNumber(s.median)} ${unit} (${formatSpread(s)}, n=${s.n})`);
    };
    add("bench", "expert_ms", "ms", one.stats.compute_ms);
    add("bench", "expert_gb_s", "GB/s", one.stats.gbps);
    add("moebench", "layer_ms", "ms", moe.stats.ms_per_op);
    add("moebench", "layer_gb_s", "GB/s", moe.stats.gbps);
    add("fullbench", "decode_tok_s", "tok/s", full.tokS, { memory: ceilings.memory, kernel: ceilings.kernel });
    add("fullbench", "decode_gb_s", "GB/s", full.gbs);
    add("fullbench", "kernel_gb_s_per_core", "GB/s", full.kernelGBsPerCore);
    // decode streamed: pread, the page cache held to half the expert files (so most expert reads come from the disk);
    // its disk ceiling is for the bytes that really came from the disk, as the engine counted them (mincore)
    const cacheMb = Math.max(1, Math.floor(expertFileBytes(model.artifactsDir) / 2 / 2 ** 20));
    let streamedNote = "";
    if (process.platform === "linux" && o.streamed !== false) {
      logger.info(`${shape.name}: decode, experts streamed (pread, page cache held to ${cacheMb} MB of the ${renderBytes(expertFileBytes(model.artifactsDir))} expert files)`);
      const st = await runDecodeBench({ ...engine, artifactsDir: model.artifactsDir, iters: o.decodeIters, expertIo: "pread", expertCacheMb: cacheMb });
      const fromDiskPerToken = st.io.bytesFromDisk / Math.max(1, st.io.tokens);
      const diskCeiling = resolveDiskCeiling(st.bytesPerToken, fromDiskPerToken, memoryGBs, profile.disk.coldGBs?.median ?? null);
      add("fullbench", "decode_streamed_tok_s", "tok/s", st.tokS, { disk: diskCeiling, memory: ceilings.memory });
      const mb = (x: number) => ({ median: x / 1e6, min: x / 1e6, max: x / 1e6, n: o.runs });
      add("fullbench", "streamed_disk_mb_per_token", "MB", mb(fromDiskPerToken));
      add("fullbench", "streamed_cached_mb_per_token", "MB", mb(st.io.bytesCached / Math.max(1, st.io.tokens)));
      streamedNote = `streamed row: --expert-io pread --expert-cache-mb ${cacheMb}; ${formatNumber(fromDiskPerToken / 1e6)} MB/token from disk, ${formatNumber(st.io.bytesCached / Math.max(1, st.io.tokens) / 1e6)} MB/token from the page cache (${st.io.reads} expert reads over ${st.io.tokens} tokens)`;
    } else streamedNote = "no streamed row: it needs posix_fadvise (Linux; macOS has none)";
    // per layer, and the whole model extrapolated from it (the slice's tok/s is mostly its lm_head)
    if (full.slice) {
      const dims = resolveTestModelDims(shape.preset);
      const kinds = layerKinds(dims.num_hidden_layers, dims.full_attention_interval);
      const whole = resolveExtrapolation(full.slice, kinds);
      const slice = sliceTotal(full.slice);
      const memFull = (memoryGBs * 1e9) / whole.bytesPerToken;
      const perRun = summarize(full.slices.map((x) => resolveExtrapolation(x, kinds).tokS));
      add("extrapolated", `decode_tok_s_${whole.nLayers}l`, "tok/s", perRun, { memory: memFull });
      layerTables.push(renderLayerTable(shape, full.slice, slice, whole, memoryGBs, profile.disk.coldGBs?.median ?? null, streamedNote));
      logger.info(layerTables.at(-1)!);
    }
    // prefill from an empty context, beside the compute ceiling (int8 MACs/cycle x the measured clock x threads)
    for (const n of o.prefillTokens ?? [512, 8192]) {
      const long = n > 1024;
      const pf = await repeatEngineBench("prefill", ["tok_s", "compute_ceiling_tok_s", "clock_ghz", "int8_macs_per_cycle"], {
        ...engine,
        runs: long ? 1 : o.runs,
        warmup: 0,
        iters: long ? 1 : 3,
        prompt: n,
        artifactsDir: model.artifactsDir,
      });
      const ceil = pf.stats.compute_ceiling_tok_s?.median;
      add("prefill", `pp${n}_tok_s`, "tok/s", pf.stats.tok_s, ceil ? { compute: ceil } : undefined);
      if (pf.stats.tok_s && full.tokS.median > 0) {
        prefillNotes.push(`${shape.name}: prefill of ${n} tokens ${formatNumber(pf.stats.tok_s.median)} tok/s = ${formatNumber(pf.stats.tok_s.median / full.tokS.median)} x its decode (${formatNumber(full.tokS.median)} tok/s)`);
      }
      if (pf.stats.clock_ghz && !computeNote) {
        computeNote = `compute ceiling = ${formatNumber(pf.stats.int8_macs_per_cycle?.median ?? 0)} int8 multiply-adds per cycle per core (the measured vpdpbusd peak / the clock) x ${formatNumber(pf.stats.clock_ghz.median)} GHz (measured: a chain of dependent adds) x ${threads} threads, over each model's multiply-adds per token`;
      }
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
          kernelGBsPerCore: full.kernelGBsPerCore?.median ?? null,
          engineBinary: binary,
          ttftTokens: o.e2eTtftTokens ?? 8192,
          ttftRuns: 2,
        });
        for (const rec of r.records) rows.push({ model: shape.name, target: rec.target, figure: rec.figure, unit: rec.unit, stats: rec.stats, ceilings: rec.ceilings });
        e2eTables.push(`${shape.name} — end to end through the server${r.cases.some((c) => c.cache === "cold") ? "" : ` (no cold runs: ${r.coldNote})`}\n${renderE2eTable(r, r.ceilings)}`);
        logger.info(e2eTables.at(-1)!);
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
  return { profile, busy, rows, records, failures, table: renderStandardTable(rows), e2eTables, layerTables, computeNote, prefillNotes, memoryNotes, agentTables };
}

/** Engine figures as a table: median with its spread, beside the memory, disk, kernel and compute ceilings. */
export function renderStandardTable(rows: readonly StandardRow[]): string {
  const pct = (x: number, c: number | null | undefined) => (c ? `${Math.round((100 * x) / c)}% of ${formatNumber(c)}` : "");
  const hasCompute = rows.some((r) => r.ceilings?.compute);
  const label = (r: StandardRow) => {
    if (r.figure === "kernel_gb_s_per_core") return "kernel GB/s per core";
    if (r.unit === "MB") return `${r.figure.replace(/_mb_per_token$/, "")} MB/token`;
    return `${r.figure.replace(/_tok_s$|_gb_s$|_ms$/, "").replace(/_tok_s_(\d+l)$/, " $1")} ${r.unit}`;
  };
  return renderBenchTable(
    ["model", "target", "figure", "median", "spread", "n", "of mem ceiling", "of disk ceiling", "of kernel ceiling", ...(hasCompute ? ["of compute ceiling"] : [])],
    rows
      .filter((r) => r.target !== "e2e" && r.target !== "agent")
      .map((r) => [
        r.model,
        r.target,
        label(r),
        formatNumber(r.stats.median),
        formatSpread(r.stats),
        String(r.stats.n),
        pct(r.stats.median, r.ceilings?.memory),
        pct(r.stats.median, r.ceilings?.disk),
        pct(r.stats.median, r.ceilings?.kernel),
        ...(hasCompute ? [pct(r.stats.median, r.ceilings?.compute)] : []),
      ]),
  );
}

/**
 * Per-layer decode time and bytes of a slice, and the whole model extrapolated from them: the lm_head once plus the
 * full model's layers at the slice's per-kind means, beside the memory ceiling of the full model's bytes.
 */
export function renderLayerTable(
  shape: BenchShape,
  slice: SliceFigures,
  measured: Extrapolation,
  whole: Extrapolation,
  memoryGBs: number,
  diskGBs: number | null,
  note = "",
): string {
  const mb = (x: number) => formatNumber(x / 1e6);
  const rows: string[][] = slice.layers.map((l, i) => [`layer ${i}`, `${l.kind} attention`, formatNumber(l.ms), mb(l.denseBytes), mb(l.expertBytes)]);
  rows.push(["lm_head", "+ final norm", formatNumber(slice.headMs), mb(slice.headBytes), "0"]);
  const table = renderBenchTable(["part", "kind", "ms/token", "dense MB", "experts MB"], rows);
  const kinds = (e: Extrapolation) => `${e.nLayers} layers`;
  const line = (what: string, e: Extrapolation) => {
    const mem = (memoryGBs * 1e9) / e.bytesPerToken;
    return `  ${what}: ${renderExtrapolation(e)}; memory ceiling ${formatNumber(mem)} tok/s (${Math.round((100 * e.tokS) / mem)}%)`;
  };
  const expertBytes = whole.nLayers * (slice.layers[0]?.expertBytes ?? 0); // K experts in every layer
  const diskLine = diskGBs
    ? `  the full model with every expert from the disk (cold): disk ceiling ${formatNumber(1 / ((whole.bytesPerToken - expertBytes) / (memoryGBs * 1e9) + expertBytes / (diskGBs * 1e9)))} tok/s`
    : "";
  return [
    `${shape.name} — decode per layer (experts in memory, medians)`,
    table,
    line(`this slice (${kinds(measured)}), from its parts`, measured),
    line(`the full model (${kinds(whole)}), extrapolated`, whole),
    ...(whole.missingKinds.length ? [`  (the slice has no ${whole.missingKinds.join("/")} attention layer: those are counted at the other kind's mean)`] : []),
    ...(diskLine ? [diskLine] : []),
    ...(note ? [`  ${note}`] : []),
  ].join("\n");
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
    remeasure: {
      type: "boolean",
      description: "Measure memory read bandwidth, the clock and the disk in this run, so the ceilings come from the same run (default on; --no-remeasure reuses the cached figures)",
    },
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
      remeasure: args.remeasure !== false,
      history: args.history !== false,
      agentSizes: args.agentSizes === "none" ? [] : parseSizes(args.agentSizes, "--agent-sizes"),
    });
    if (args.json) console.log(JSON.stringify({ profile: r.profile, rows: r.rows, failures: r.failures, layerTables: r.layerTables, computeNote: r.computeNote, prefillNotes: r.prefillNotes, memoryNotes: r.memoryNotes }, null, 2));
    else {
      console.log(renderProfile(r.profile));
      if (r.busy) console.log(`warning: ${r.busy}`);
      console.log("");
      console.log(r.table);
      if (r.memoryNotes.length) console.log(`\n${r.memoryNotes.join("\n")}`);
      if (r.computeNote) console.log(`\n${r.computeNote}`);
      if (r.prefillNotes.length) console.log(`\n${r.prefillNotes.join("\n")}`);
      for (const t of r.layerTables) console.log(`\n${t}`);
      for (const t of r.e2eTables) console.log(`\n${t}`);
      for (const t of r.agentTables) console.log(`\n${t}`);
      if (args.history !== false) console.log(`\nappended ${r.records.length} figures to ${historyPath(config)} (flashchat benchmark report charts them)`);
    }
    logger.info(`standard set done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    if (r.failures.length) throw new UserError(`${r.failures.length} target(s) failed: ${r.failures.join("; ")}`);
  },
});

export default command;
