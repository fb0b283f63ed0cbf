// Is a pid alive, and is it our server? (/proc on Linux, ps elsewhere.) Never trust a pid file blindly:
// pids get reused, and --stop must only ever signal our own server.
import { existsSync, readFileSync } from "node:fs";

/** Alive and not a zombie. */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EPERM") return true; // someone else's process
    return false;
  }
  const stat = `/proc/${pid}/stat`;
  if (existsSync(stat)) {
    const state = /\) (\S)/.exec(readFileSync(stat, "utf8"))?.[1];
    return state !== "Z" && state !== "X";
  }
  return true;
}

/** The process's command line as argv, or undefined if it cannot be read. */
export function loadCommandLine(pid: number): string[] | undefined {
  const proc = `/proc/${pid}/cmdline`;
  if (existsSync(`/proc/${pid}`)) {
    try {
      const raw = readFileSync(proc, "utf8");
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
