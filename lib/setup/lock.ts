// One setup of a model at a time: a lock file holding the pid (taken over when that process is gone).
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { dirname } from "pathe";
import { logger } from "../log.ts";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function tryCreate(path: string): boolean {
  try {
    const fd = openSync(path, "wx", 0o644);
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
}

/**
 * Hold `path` while `fn` runs. Another live holder is waited for (it is setting up the same model: when it is
 * done there is usually nothing left to do); a lock left by a dead process is taken over.
 */
export async function withLock<T>(path: string, what: string, fn: (waited: boolean) => Promise<T>, pollMs = 500): Promise<T> {
  mkdirSync(dirname(path), { recursive: true });
  let told = false;
  while (!tryCreate(path)) {
    let pid = 0;
    try {
      pid = Number.parseInt(readFileSync(path, "utf8"), 10);
    } catch {
      continue; // removed meanwhile: try again
    }
    if (!pid || !alive(pid)) {
      // left by a process that is gone (two takers racing here is possible but needs two stale-lock finds at once)
      rmSync(path, { force: true });
      continue;
    }
    if (!told) {
      logger.info(`waiting for another flashchat (pid ${pid}) that is setting up ${what}`);
      told = true;
    }
    await Bun.sleep(pollMs);
  }
  try {
    return await fn(told);
  } finally {
    rmSync(path, { force: true });
  }
}
