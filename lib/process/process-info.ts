// Is a pid alive, and is it our server? (/proc on Linux; `ps` on macOS and elsewhere, whose -o stat= / command=
// columns are POSIX.) Never trust a pid file blindly: pids get reused, and --stop must only ever signal our own server.
import { existsSync, readFileSync } from "node:fs";

/** How process facts are read: /proc (Linux) or ps (macOS and the rest; tests use it on Linux too). */
export type ProcessSource = "proc" | "ps";
const DEFAULT_SOURCE: ProcessSource = process.platform === "linux" ? "proc" : "ps";

/** The process's state letter (R, S, Z, ...), or undefined if it cannot be read. */
function processState(pid: number, via: ProcessSource): string | undefined {
  if (via === "proc") {
    // Linux (macOS: ps, below)
    const stat = `/proc/${pid}/stat`;
    if (!existsSync(stat)) return undefined;
    try {
      return /\) (\S)/.exec(readFileSync(stat, "utf8"))?.[1];
    } catch {
      return undefined;
    }
  }
  const r = Bun.spawnSync(["ps", "-o", "stat=", "-p", String(pid)], { stdout: "pipe", stderr: "ignore" });
  const state = r.stdout.toString().trim();
  return r.exitCode === 0 && state ? state[0] : undefined;
}

/** Alive and not a zombie. */
export function isProcessAlive(pid: number, via: ProcessSource = DEFAULT_SOURCE): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EPERM") return true; // someone else's process
    return false;
  }
  const state = processState(pid, via);
  return state !== "Z" && state !== "X";
}

/** The process's command line as argv, or undefined if it cannot be read. */
export function loadCommandLine(pid: number, via: ProcessSource = DEFAULT_SOURCE): string[] | undefined {
  if (via === "proc") {
    // Linux (macOS: ps, below)
    try {
      const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      return raw ? raw.split("\0").filter(Boolean) : undefined;
    } catch {
      return undefined;
    }
  }
  const r = Bun.spawnSync(["ps", "-o", "command=", "-p", String(pid)], { stdout: "pipe", stderr: "ignore" });
  const line = r.stdout.toString().trim();
  return r.exitCode === 0 && line ? line.split(/\s+/) : undefined;
}

/** The marker the background server runs with (scripts/serve.ts --foreground). */
export const SERVER_MARKER = "--foreground";

/** Our background server: a live process running scripts/serve.ts with the --foreground marker. */
export function isOurServer(pid: number): boolean {
  if (!isProcessAlive(pid)) return false;
  const argv = loadCommandLine(pid);
  if (!argv) return false;
  return argv.some((a) => a.endsWith("serve.ts")) && argv.includes(SERVER_MARKER);
}

/** Wait until the process is gone (polling; works for processes that are not our children). */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isProcessAlive(pid)) return true;
    await Bun.sleep(50);
  }
  return !isProcessAlive(pid);
}

/** Resident memory of a process in bytes (VmRSS in /proc on Linux, `ps -o rss=` elsewhere), or undefined. */
export function loadRssBytes(pid: number, via: ProcessSource = DEFAULT_SOURCE): number | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  if (via === "proc") {
    // Linux (macOS: ps, below)
    try {
      const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
      return kb === undefined ? undefined : Number(kb) * 1024;
    } catch {
      return undefined;
    }
  }
  const r = Bun.spawnSync(["ps", "-o", "rss=", "-p", String(pid)], { stdout: "pipe", stderr: "ignore" });
  const kb = r.stdout.toString().trim();
  return r.exitCode === 0 && /^\d+$/.test(kb) ? Number(kb) * 1024 : undefined;
}
