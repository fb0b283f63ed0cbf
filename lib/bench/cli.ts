// Benchmark target `cli`: start-up time of CLI commands as ratios to `bun -e 0` measured in the same run (rounds
// interleave every command, so load on the machine hits all alike), median and spread, and a one-shot `prompt` on
// the demo model with no server running, end to end. A temp HOME keeps the user's config and sessions out of it.
//   bun scripts/benchmark.ts cli [--runs 10] [--prompt-runs 3] [--no-prompt] [--json]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { defineCommand } from "citty";
import { join } from "pathe";
import { globalArgs, jsonArgs, parseIntFlag } from "../cli.ts";
import { logger } from "../log.ts";
import { findFreePorts } from "../process/port.ts";
import { checkMachineLoad } from "./machine.ts";
import { renderBenchTable } from "./report.ts";
import { formatNumber, type Summary, summarize } from "./stats.ts";

const CLI = join(import.meta.dir, "..", "..", "scripts", "flashchat.ts");

/** One command to time. `readyWhen`: stop the clock when stdout matches (then end the process), for interactive ones. */
export interface CliCase {
  name: string;
  /** the command after `bun`: [] is never allowed; the baseline is ["-e", "0"] */
  argv: readonly string[];
  /** the target, as a ratio to the baseline (shown; the benchmark never fails on it) */
  maxRatio?: number;
  readyWhen?: RegExp;
}

/** The start-up cases, baseline first. Adding a command is one line here. */
export const CLI_CASES: readonly CliCase[] = [
  { name: "bun -e 0", argv: ["-e", "0"] },
  { name: "--version", argv: [CLI, "--version"], maxRatio: 2 },
  { name: "config get", argv: [CLI, "config", "get", "SERVER_PORT"], maxRatio: 3 },
  { name: "status", argv: [CLI, "status"], maxRatio: 4 },
];

/** The end-to-end case: one reply from the demo model, no server running (the CLI starts and stops its own). */
export const PROMPT_ARGV: readonly string[] = [CLI, "prompt", "--model", "demo", "--tokens", "3", "Hello"];

export interface CliTiming {
  name: string;
  /** wall time from spawn to exit (or to readyWhen), ms */
  wallMs: Summary;
  /** user + system CPU time of the process, ms (not for readyWhen cases) */
  cpuMs?: Summary;
  /** median wall time / the baseline's median wall time */
  ratio: number;
  maxRatio?: number;
}

export interface CliBenchResult {
  loadAverage: number;
  cases: CliTiming[];
  prompt?: { wallMs: Summary };
}

/** Run one command once in `env`; its wall time and CPU time in ms. A failing command is a bug in the benchmark. */
async function timeOnce(argv: readonly string[], env: Record<string, string>, readyWhen?: RegExp): Promise<{ wallMs: number; cpuMs?: number }> {
  const t0 = performance.now();
  const proc = Bun.spawn([process.execPath, ...argv], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  if (readyWhen) {
    let seen = "";
    const decoder = new TextDecoder();
    for await (const chunk of proc.stdout) {
      seen += decoder.decode(chunk, { stream: true });
      if (readyWhen.test(seen)) break;
    }
    const wallMs = performance.now() - t0;
    proc.kill();
    await proc.exited;
    if (!readyWhen.test(seen)) throw new Error(`${argv.join(" ")} ended before printing ${readyWhen}: ${seen.slice(-500)}`);
    return { wallMs };
  }
  const [stdout, stderr, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
  const wallMs = performance.now() - t0;
  if (code !== 0) throw new Error(`${argv.join(" ")} failed (exit ${code}): ${(stderr || stdout).slice(-1000)}`);
  const usage = proc.resourceUsage();
  const cpuMs = usage ? Number(usage.cpuTime.user + usage.cpuTime.system) / 1000 : undefined;
  return { wallMs, cpuMs };
}

/** A throwaway HOME (config, data, cache inside) and a server port nothing listens on. */
async function createBenchEnv(dir: string): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("FLASHCHAT_") && !k.startsWith("XDG_") && !k.startsWith("HF_")) env[k] = v;
  const [port] = await findFreePorts("127.0.0.1", 20000 + Math.floor(Math.random() * 20000), 1);
  return {
    ...env,
    HOME: dir,
    XDG_CONFIG_HOME: join(dir, "config"),
    XDG_DATA_HOME: join(dir, "data"),
    XDG_CACHE_HOME: join(dir, "cache"),
    HF_HOME: join(dir, "hf"),
    NO_COLOR: "1",
    FLASHCHAT_SERVER_PORT: String(port),
  };
}

export async function runCliBench(o: { runs: number; warmup: number; promptRuns: number; cases?: readonly CliCase[] }): Promise<CliBenchResult> {
  const cases = o.cases ?? CLI_CASES;
  const dir = mkdtempSync(join(tmpdir(), "flashchat-bench-cli-"));
  try {
    const env = await createBenchEnv(dir);
    const wall = cases.map(() => [] as number[]);
    const cpu = cases.map(() => [] as number[]);
    for (let round = 0; round < o.warmup + o.runs; round++) {
      for (let i = 0; i < cases.length; i++) {
        const r = await timeOnce(cases[i]!.argv, env, cases[i]!.readyWhen);
        if (round < o.warmup) continue;
        wall[i]!.push(r.wallMs);
        if (r.cpuMs !== undefined) cpu[i]!.push(r.cpuMs);
      }
    }
    const base = summarize(wall[0]!).median;
    const timings: CliTiming[] = cases.map((c, i) => {
      const wallMs = summarize(wall[i]!);
      return { name: c.name, wallMs, cpuMs: cpu[i]!.length ? summarize(cpu[i]!) : undefined, ratio: wallMs.median / base, maxRatio: c.maxRatio };
    });
    let prompt: CliBenchResult["prompt"];
    if (o.promptRuns > 0) {
      logger.info("setting up the demo model in a temp HOME for the prompt case");
      await timeOnce([CLI, "setup", "--model", "demo", "--yes", "-q"], env);
      const ms: number[] = [];
      // one unmeasured run: the first one writes the tokenizer cache
      for (let i = 0; i < o.promptRuns + 1; i++) {
        const r = await timeOnce(PROMPT_ARGV, env);
        if (i > 0) ms.push(r.wallMs);
      }
      prompt = { wallMs: o.promptRuns > 1 ? summarize(ms) : { median: ms[0]!, min: ms[0]!, max: ms[0]!, n: 1 } };
    }
    const { loadavg } = await import("node:os");
    return { loadAverage: loadavg()[0] ?? 0, cases: timings, prompt };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ms = (x: number) => formatNumber(x, 3);

export function renderCliBench(r: CliBenchResult): string {
  const rows = r.cases.map((c) => [
    c.name,
    ms(c.wallMs.median),
    `${ms(c.wallMs.min)}–${ms(c.wallMs.max)}`,
    c.cpuMs ? ms(c.cpuMs.median) : "",
    `${c.ratio.toFixed(2)}×`,
    c.maxRatio === undefined ? "" : `≤ ${c.maxRatio}×${c.ratio <= c.maxRatio ? "" : " (missed)"}`,
  ]);
  if (r.prompt) rows.push(["prompt (demo, no server)", ms(r.prompt.wallMs.median), `${ms(r.prompt.wallMs.min)}–${ms(r.prompt.wallMs.max)}`, "", "", "≤ 3000 ms on a quiet machine"]);
  const table = renderBenchTable(["command", "median ms", "min–max ms", "CPU ms", "× bun -e 0", "target"], rows);
  return `${table}\nload average ${r.loadAverage.toFixed(1)} during the run; ratios are to bun -e 0 in the same interleaved rounds`;
}

const command = defineCommand({
  meta: { name: "cli", description: "CLI start-up as ratios to `bun -e 0`, and one-shot prompt end to end" },
  args: {
    ...globalArgs,
    ...jsonArgs,
    runs: { type: "string", description: "Measured rounds of every command (default 10)", valueHint: "N" },
    warmup: { type: "string", description: "Rounds thrown away first (default 2)", valueHint: "N" },
    promptRuns: { type: "string", description: "Measured one-shot prompts on the demo model (default 3)", valueHint: "N" },
    prompt: { type: "boolean", description: "Time the one-shot prompt too (default on; --no-prompt to skip)" },
  },
  async run({ args }) {
    const busy = checkMachineLoad();
    if (busy) logger.warn(busy);
    const result = await runCliBench({
      runs: parseIntFlag(args.runs, "--runs", 2) ?? 10,
      warmup: parseIntFlag(args.warmup, "--warmup", 0) ?? 2,
      promptRuns: args.prompt === false ? 0 : (parseIntFlag(args.promptRuns, "--prompt-runs", 1) ?? 3),
    });
    console.log(args.json ? JSON.stringify(result) : renderCliBench(result));
  },
});

export default command;
