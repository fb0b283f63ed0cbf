// Benchmark target `tui`: start to first frame of the TUI (a bare `flashchat` in a new window of a running tmux
// server, timed until its view tabs are on the screen) and its resident memory then, beside `bun -e` printing one line, started and
// timed the same way in the same run, and beside the least OpenTUI program (lib/bench/tui-floor.ts: the floor
// under any OpenTUI start-up), the three taking turns (the ratios are the figures; absolute times depend on
// the machine's load). --steps: then runs with -v and reports the TUI's own timed start-up steps (the config is
// read after the first frame: its step comes last and is no part of the time to the first frame).
//   flashchat benchmark tui [--runs 5] [--steps] [--json]
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { defineCommand } from "citty";
import { globalArgs, jsonArgs, parseIntFlag } from "../cli.ts";
import { UserError } from "../errors.ts";
import { logger } from "../log.ts";
import { checkMachineLoad } from "./machine.ts";
import { FLOOR_MARKER } from "./tui-floor.ts";
import { formatSummary, type Summary, summarize } from "./stats.ts";

export interface TuiStartup {
  /** ms from starting the process to its first frame on the screen */
  firstFrameMs: Summary;
  /** the same for `bun -e` printing a line (baseline) */
  bunMs: Summary;
  /** firstFrameMs.median / bunMs.median */
  ratio: number;
  /** the floor: the least OpenTUI program (lib/bench/tui-floor.ts: OpenTUI imported as the TUI does, a renderer, one line), to its first frame */
  floorMs: Summary;
  /** firstFrameMs.median / floorMs.median: what the TUI's own work adds to OpenTUI's */
  floorRatio: number;
  /** resident memory of the TUI at its first frame */
  rssMiB: Summary;
  /** CPU time (user + system) the TUI and `bun -e` had used when their line was on screen (Linux; less load-sensitive than wall time) */
  cpuMs?: { tui: Summary; bun: Summary };
  /** --steps: ms of each -v start-up step ("config read", "OpenTUI imported", ...), and "first frame" since the process began */
  steps?: Record<string, Summary>;
}

const repoRoot = join(import.meta.dir, "..", "..");
const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** CPU time (user + system, all threads) a process has used, in ms (Linux /proc; 10 ms steps), or undefined. */
function cpuMsOf(pid: number): number | undefined {
  if (process.platform !== "linux") return undefined;
  try {
    // fields after the ")" that ends the command name: state is 3rd, utime 14th, stime 15th (clock ticks, 100/s)
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return undefined;
  }
}

/** Between two looks at the screen: each look starts a tmux client, so looking more often takes CPU from what is timed. */
const POLL_MS = 10;

interface TimedRun {
  ms: number;
  rssBytes?: number;
  cpuMs?: number;
}

/**
 * One tmux server (80x24, started once: its own start-up is no part of what is timed) in which each timed command
 * gets a new window; `time` gives the ms until `marker` is on that window's screen, and the process's RSS and CPU
 * time then.
 */
function startTerminal(env: Record<string, string>) {
  const socket = `fc-bench-tui-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const tmux = (...args: string[]) => Bun.spawnSync(["tmux", "-L", socket, "-f", "/dev/null", ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const exports = Object.entries(env)
    .map(([k, v]) => `export ${k}=${q(v)};`)
    .join(" ");
  const started = tmux("new-session", "-d", "-s", "b", "-x", "80", "-y", "24", "sleep 86400");
  if (started.exitCode !== 0) throw new Error(`tmux could not start: ${started.stderr.toString()}`);
  tmux("set-option", "-g", "default-size", "80x24");
  let n = 0;
  return {
    /** `settled`: after the marker, wait (untimed, up to 10 s) until this holds before closing the window. */
    async time(command: string, marker: string, timeoutMs = 60_000, settled?: () => boolean): Promise<TimedRun> {
      const target = `b:w${++n}`;
      const t0 = performance.now();
      const opened = tmux("new-window", "-d", "-t", "b:", "-n", `w${n}`, `unset CI; ${exports} exec ${command}`);
      if (opened.exitCode !== 0) throw new Error(`tmux could not open a window: ${opened.stderr.toString()}`);
      let pid = 0;
      try {
        for (;;) {
          const screen = tmux("capture-pane", "-t", target, "-p").stdout.toString();
          if (screen.includes(marker)) {
            const ms = performance.now() - t0;
            pid = Number(tmux("display-message", "-p", "-t", target, "#{pane_pid}").stdout.toString().trim());
            const cpuMs = cpuMsOf(pid);
            let rssBytes: number | undefined;
            // Linux only: macOS has no /proc (process.platform darwin reports no memory figure)
            if (process.platform === "linux") try {
              const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
              if (m) rssBytes = Number(m[1]) * 1024;
            } catch {
              // not Linux, or gone: no memory figure
            }
            for (const until = performance.now() + 10_000; settled && !settled() && performance.now() < until; ) await Bun.sleep(POLL_MS);
            return { ms, rssBytes, cpuMs };
          }
          if (performance.now() - t0 > timeoutMs) throw new Error(`"${marker}" did not appear within ${timeoutMs} ms; screen:\n${screen}`);
          await Bun.sleep(POLL_MS);
        }
      } finally {
        tmux("kill-window", "-t", target);
        // the next run starts once this process has gone (a TUI closing, or still busy after its first frame, would take CPU from it)
        for (const until = performance.now() + 5_000; pid > 0 && performance.now() < until; await Bun.sleep(POLL_MS)) {
          try {
            process.kill(pid, 0);
          } catch {
            break;
          }
        }
      }
    },
    close: () => void tmux("kill-server"),
  };
}

/** The TUI's -v step lines ("+0.203s tui: config read (92 ms)"): ms per step, and the first frame's time since the start. */
export function parseTuiSteps(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of Bun.stripANSI(text).matchAll(/\+([\d.]+)s tui: ([a-zA-Z ]+?) \((\d+) ms\)/g)) {
    out[m[2]!] = Number(m[3]);
    if (m[2] === "first frame drawn") out["first frame (since the process started)"] = Math.round(Number(m[1]) * 1000);
  }
  return out;
}

export async function runTuiBench(opts: { runs: number; warmup?: number; steps?: boolean }): Promise<TuiStartup> {
  if (Bun.spawnSync(["sh", "-c", "command -v tmux"]).exitCode !== 0) throw new UserError("benchmark tui needs tmux", "install it (apt-get install tmux, brew install tmux)");
  const home = mkdtempSync(join(tmpdir(), "fc-bench-tui-"));
  const env = {
    HOME: home,
    XDG_CONFIG_HOME: join(home, "c"),
    XDG_DATA_HOME: join(home, "d"),
    XDG_CACHE_HOME: join(home, "x"),
    TERM: "xterm-256color",
    // a port nothing listens on: the TUI opens with the server off and starts nothing
    FLASHCHAT_SERVER_PORT: "1",
  };
  const term = startTerminal(env);
  try {
    const bun = q(process.execPath);
    const flashchat = q(join(repoRoot, "scripts/flashchat.ts"));
    const runTui = () => term.time(`${bun} ${flashchat}`, "[1 Chat]");
    const runBun = () => term.time(`${bun} -e 'console.log("ready"); await Bun.sleep(60000)'`, "ready");
    const runFloor = () => term.time(`${bun} ${q(join(repoRoot, "lib/bench/tui-floor.ts"))}`, FLOOR_MARKER);
    // the three take turns, so that a change in the machine's load weighs on all alike
    for (let i = 0; i < (opts.warmup ?? 1); i++) await runTui(), await runBun(), await runFloor();
    const tui: TimedRun[] = [];
    const base: TimedRun[] = [];
    const floor: TimedRun[] = [];
    for (let i = 0; i < opts.runs; i++) {
      tui.push(await runTui());
      base.push(await runBun());
      floor.push(await runFloor());
    }
    const firstFrameMs = summarize(tui.map((r) => r.ms));
    const bunMs = summarize(base.map((r) => r.ms));
    const cpu = (rs: typeof tui) => rs.flatMap((r) => (r.cpuMs === undefined ? [] : [r.cpuMs]));
    const rss = tui.flatMap((r) => (r.rssBytes ? [r.rssBytes / 2 ** 20] : []));
    const floorMs = summarize(floor.map((r) => r.ms));
    const result: TuiStartup = { firstFrameMs, bunMs, ratio: firstFrameMs.median / bunMs.median, floorMs, floorRatio: firstFrameMs.median / floorMs.median, rssMiB: rss.length ? summarize(rss) : { median: NaN, min: NaN, max: NaN, n: 0 } };
    if (cpu(tui).length && cpu(base).length) result.cpuMs = { tui: summarize(cpu(tui)), bun: summarize(cpu(base)) };
    if (opts.steps) {
      const runs: Record<string, number>[] = [];
      const log = join(home, "steps.txt");
      const read = () => {
        try {
          return readFileSync(log, "utf8");
        } catch {
          return "";
        }
      };
      for (let i = 0; i < opts.runs; i++) {
        rmSync(log, { force: true });
        // the step lines are written as they happen; the config is read after the first frame, its line comes last
        await term.time(`sh -c ${q(`${bun} ${flashchat} -v 2>${q(log)}`)}`, "[1 Chat]", 60_000, () => read().includes("tui: config read"));
        runs.push(parseTuiSteps(read()));
      }
      const names = [...new Set(runs.flatMap((r) => Object.keys(r)))];
      result.steps = Object.fromEntries(names.flatMap((n) => {
        const xs = runs.flatMap((r) => (r[n] === undefined ? [] : [r[n]!]));
        return xs.length ? [[n, summarize(xs)]] : [];
      }));
    }
    return result;
  } finally {
    term.close();
    rmSync(home, { recursive: true, force: true });
  }
}

const command = defineCommand({
  meta: { name: "tui", description: "TUI start to first frame and memory, beside `bun -e` and the least OpenTUI program started the same way" },
  args: {
    ...globalArgs,
    ...jsonArgs,
    runs: { type: "string", description: "Measured runs of each (default 5)", valueHint: "N" },
    steps: { type: "boolean", description: "Then run the TUI with -v and report its timed start-up steps" },
  },
  async run({ args }) {
    const busy = checkMachineLoad();
    if (busy) logger.warn(busy);
    const r = await runTuiBench({ runs: parseIntFlag(args.runs, "--runs", 2) ?? 5, steps: Boolean(args.steps) });
    if (args.json) return console.log(JSON.stringify(r, null, 2));
    console.log(`TUI start to first frame  ${formatSummary(r.firstFrameMs)} ms`);
    console.log(`bun -e, first line        ${formatSummary(r.bunMs)} ms`);
    console.log(`ratio                     ${r.ratio.toFixed(2)}x`);
    console.log(`OpenTUI alone (the floor) ${formatSummary(r.floorMs)} ms: the TUI takes ${r.floorRatio.toFixed(2)}x`);
    console.log(`TUI memory at first frame ${r.rssMiB.n ? `${formatSummary(r.rssMiB)} MiB` : "not measured"}`);
    if (r.cpuMs) console.log(`CPU time to that point     TUI ${formatSummary(r.cpuMs.tui)} ms, bun -e ${formatSummary(r.cpuMs.bun)} ms`);
    if (r.steps) {
      console.log("start-up steps with -v (ms; -v itself loads the logger):");
      for (const [name, sum] of Object.entries(r.steps)) console.log(`  ${name.padEnd(40)} ${formatSummary(sum)}`);
    }
  },
});

export default command;
