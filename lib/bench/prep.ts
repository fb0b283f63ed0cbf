// Benchmark target `prep`: extract-weights and repack-experts on a generated 397B-shaped checkpoint against `cp` of
// the shards, warm and cold page cache (cold: the shards evicted with posix_fadvise), medians of N runs, GB/s and peak RSS.
//   bun scripts/benchmark.ts prep [--dir DIR] [--runs 3] [--mode warm|cold|both] [--layers 2] [--json]
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { defineCommand } from "citty";
import { join } from "pathe";
import { globalArgs, jsonArgs, parseIntFlag } from "../cli.ts";
import { UserError } from "../errors.ts";
import { scriptPath } from "../scripts.ts";
import { logger } from "../log.ts";
import { evictFiles } from "./machine.ts";
import { writeTestModel } from "../model/test-model.ts";
import { summarize, type Summary } from "./stats.ts";

const SCRIPTS = { extract: scriptPath("extract-weights"), repack: scriptPath("repack-experts") };

export type PrepTool = "cp" | "extract-weights" | "repack-experts";
export type CacheMode = "warm" | "cold";

export interface PrepRun {
  seconds: number;
  bytes: number;
  maxRssBytes: number;
}

export interface PrepResult {
  tool: PrepTool;
  mode: CacheMode;
  bytes: number;
  seconds: Summary;
  gbPerSec: Summary;
  maxRssMB: number;
}

/** Evict the checkpoint's shards (only them) from the page cache, so the next reads come from the disk. True when it worked. */
export async function evictShards(shards: readonly string[]): Promise<boolean> {
  return (await evictFiles(shards)).ok;
}

/** Reuse the checkpoint in `dir` if it is the one asked for, else generate it. */
export async function ensureBenchCheckpoint(dir: string, preset: string, layers: number): Promise<string[]> {
  const stamp = join(dir, "bench-stamp.json");
  const want = JSON.stringify({ preset, layers, seed: 0, generator: 1 });
  if (!(existsSync(stamp) && readFileSync(stamp, "utf8") === want)) {
    rmSync(dir, { recursive: true, force: true });
    logger.info(`generating a ${preset} checkpoint with ${layers} layer(s) in ${dir}`);
    await writeTestModel({ outDir: dir, dims: preset, layers, seed: 0 });
    writeFileSync(stamp, want);
  }
  return readdirSync(dir).filter((f) => f.endsWith(".safetensors")).sort().map((f) => join(dir, f));
}

function readAll(files: string[]): void {
  for (const f of files) Bun.spawnSync(["cat", f], { stdout: "ignore" });
}

async function timed(cmd: string[]): Promise<{ seconds: number; maxRssBytes: number }> {
  const t0 = performance.now();
  const proc = Bun.spawn(cmd, { stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([proc.stderr.text(), proc.exited]);
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${cmd.join(" ")} failed (${code}): ${stderr.slice(-2000)}`);
  return { seconds, maxRssBytes: (proc.resourceUsage()?.maxRSS ?? 0) * 1024 };
}

const dirBytes = (dir: string): number =>
  readdirSync(dir, { withFileTypes: true }).reduce((a, e) => a + (e.isDirectory() ? dirBytes(join(dir, e.name)) : statSync(join(dir, e.name)).size), 0);

/** One timed run of a tool into a fresh output folder (removed afterwards). */
async function runTool(tool: PrepTool, ckptDir: string, shards: string[], work: string, mode: CacheMode): Promise<PrepRun> {
  const out = join(work, `out-${tool}`);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  if (mode === "cold") await evictShards(shards);
  else readAll(shards);
  let r: { seconds: number; maxRssBytes: number };
  if (tool === "cp") {
    // cp, then fsync its outputs (our scripts fsync what they write)
    r = await timed(["sh", "-c", 'cp "$@" "$0"/ && sync "$0"/*', out, ...shards]);
  } else {
    const script = tool === "extract-weights" ? SCRIPTS.extract : SCRIPTS.repack;
    r = await timed([process.execPath, script, "--model", ckptDir, "--out", out, "--quiet"]);
  }
  const bytes = tool === "extract-weights" ? statSync(join(out, "model_weights.bin")).size : dirBytes(out) - (tool === "repack-experts" ? statSync(join(out, "packed_experts/layout.json")).size : 0);
  rmSync(out, { recursive: true, force: true });
  return { ...r, bytes };
}

export interface PrepBenchOptions {
  dir: string;
  preset?: string;
  layers?: number;
  runs?: number;
  modes?: CacheMode[];
  tools?: PrepTool[];
}

/** Generate (or reuse) the checkpoint and time every tool in every cache mode; runs interleave the tools so noise hits all alike. */
export async function runPrepBench(opts: PrepBenchOptions): Promise<{ results: PrepResult[]; coldAvailable: boolean | null; checkpointBytes: number }> {
  const ckptDir = join(opts.dir, "checkpoint");
  const shards = await ensureBenchCheckpoint(ckptDir, opts.preset ?? "qwen35-397b", opts.layers ?? 2);
  const checkpointBytes = shards.reduce((a, f) => a + statSync(f).size, 0);
  const tools = opts.tools ?? ["cp", "extract-weights", "repack-experts"];
  let modes = opts.modes ?? ["warm", "cold"];
  // cold runs evict the shards from the page cache first (only them: the rest of the machine keeps its cache)
  const coldAvailable = modes.includes("cold") ? await evictShards(shards) : null;
  if (coldAvailable === false) {
    logger.warn("cannot evict the checkpoint from the page cache (needs the engine built; macOS: purge, root): cold runs skipped");
    modes = modes.filter((m) => m !== "cold");
  }
  const runs = opts.runs ?? 3;
  const results: PrepResult[] = [];
  for (const mode of modes) {
    // one untimed warm-up of each tool (JIT, file system metadata), then `runs` timed rounds
    for (const tool of tools) await runTool(tool, ckptDir, shards, opts.dir, mode);
    const samples = new Map<PrepTool, PrepRun[]>(tools.map((t) => [t, []]));
    for (let i = 0; i < runs; i++) {
      for (const tool of tools) {
        const r = await runTool(tool, ckptDir, shards, opts.dir, mode);
        samples.get(tool)!.push(r);
        logger.info(`${mode} ${tool} run ${i + 1}/${runs}: ${r.seconds.toFixed(2)}s, ${(r.bytes / 1e9 / r.seconds).toFixed(2)} GB/s, peak RSS ${(r.maxRssBytes / 1e6).toFixed(0)} MB`);
      }
    }
    for (const tool of tools) {
      const s = samples.get(tool)!;
      const bytes = s[0]!.bytes;
      results.push({
        tool, mode, bytes,
        seconds: summarize(s.map((r) => r.seconds)),
        gbPerSec: summarize(s.map((r) => r.bytes / 1e9 / r.seconds)),
        maxRssMB: Math.max(...s.map((r) => r.maxRssBytes)) / 1e6,
      });
    }
  }
  return { results, coldAvailable, checkpointBytes };
}

export function renderPrepTable(results: PrepResult[]): string {
  const lines = ["mode  tool             bytes      median s   GB/s (min-max)       vs cp   peak RSS"];
  for (const r of results) {
    const cp = results.find((x) => x.mode === r.mode && x.tool === "cp");
    const ratio = cp ? (r.gbPerSec.median / cp.gbPerSec.median).toFixed(2) : "-";
    lines.push(
      `${r.mode.padEnd(5)} ${r.tool.padEnd(16)} ${`${(r.bytes / 1e9).toFixed(2)} GB`.padEnd(10)} ${r.seconds.median.toFixed(2).padStart(8)}   ` +
        `${r.gbPerSec.median.toFixed(2)} (${r.gbPerSec.min.toFixed(2)}-${r.gbPerSec.max.toFixed(2)})`.padEnd(21) +
        `${ratio.padStart(5)}x  ${r.maxRssMB.toFixed(0).padStart(5)} MB`,
    );
  }
  return lines.join("\n");
}

export default defineCommand({
  meta: { name: "prep", description: "extract-weights and repack-experts throughput against cp on a generated 397B-shaped checkpoint" },
  args: {
    ...globalArgs,
    ...jsonArgs,
    dir: { type: "string", description: "Work folder for the generated checkpoint and outputs (default: <tmp>/flashchat-prep-bench; needs ~2.5x the checkpoint size)", valueHint: "DIR" },
    preset: { type: "string", description: "Checkpoint shape: qwen35-397b (default) or qwen36-35b", valueHint: "NAME" },
    layers: { type: "string", description: "Layers to generate (default 2: 7.2 GB of experts + 1.3 GB dense for the 397B)", valueHint: "N" },
    runs: { type: "string", description: "Timed runs per tool and mode (default 3; medians reported)", valueHint: "N" },
    mode: { type: "string", description: "warm, cold or both (default both; cold runs evict the checkpoint from the page cache first)", valueHint: "MODE" },
  },
  async run({ args }) {
    const num = (v: string | undefined, d: number, flag: string) => parseIntFlag(v, flag) ?? d;
    const mode = args.mode ?? "both";
    if (!["warm", "cold", "both"].includes(mode)) throw new UserError(`--mode must be warm, cold or both, not ${JSON.stringify(mode)}`);
    const { results, coldAvailable, checkpointBytes } = await runPrepBench({
      dir: args.dir ?? join(tmpdir(), "flashchat-prep-bench"),
      preset: args.preset,
      layers: num(args.layers, 2, "--layers"),
      runs: num(args.runs, 3, "--runs"),
      modes: mode === "both" ? ["warm", "cold"] : [mode as CacheMode],
    });
    if (args.json) console.log(JSON.stringify({ checkpointBytes, coldAvailable, results }, null, 2));
    else console.log(`${renderPrepTable(results)}${coldAvailable === false ? "\n(cold runs skipped: the checkpoint could not be evicted from the page cache)" : ""}`);
  },
});
