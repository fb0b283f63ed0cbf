// Files and paths: crash-safe writes (a temporary name, fsync, rename over NAME, fsync the folder), durable
// appends, `~` expansion and the free-disk check.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statfsSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "pathe";
import { UserError } from "./errors.ts";
import { formatBytes } from "./format.ts";

/** Write `data` to `path` atomically: readers see the old file or the whole new one, never a part. */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPath(path);
  const fd = openSync(tmp, "w", mode);
  try {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

/** fsync a directory so a rename inside it survives a power cut. Best effort where the OS refuses. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // some filesystems refuse fsync on a directory; the rename itself is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Append one line to a file and fsync it (sessions, histories). */
export function appendLineDurable(path: string, line: string, mode = 0o600): void {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, "a", mode);
  try {
    const bytes = new TextEncoder().encode(line.endsWith("\n") ? line : `${line}\n`);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The temporary name a writer fills before renaming it over `path` (this process's own). */
export const tempPath = (path: string) => `${path}.tmp-${process.pid}`;

/** fsync the open `tmp`, close it, rename it over `path`, fsync the folder: the file appears complete or not at all. */
export function commitFile(fd: number, tmp: string, path: string): void {
  fsyncSync(fd);
  closeSync(fd);
  renameDurable(tmp, path);
}

/** Rename a finished (already fsynced) file or folder into place and fsync the folder holding it. */
export function renameDurable(from: string, to: string): void {
  renameSync(from, to);
  fsyncDir(dirname(to));
}

/** `~` and `~/x` -> under $HOME (of `env`); anything else unchanged. */
export function expandHome(p: string, env: Record<string, string | undefined> = process.env): string {
  return p === "~" || p.startsWith("~/") ? join(env.HOME || homedir(), p.slice(1)) : p;
}

/** Free bytes for us on the filesystem holding `path` (its nearest existing ancestor); Infinity when none answers. */
export function freeDiskBytes(path: string): number {
  let d = path;
  for (;;) {
    try {
      const s = statfsSync(d);
      return Number(s.bavail) * Number(s.bsize);
    } catch {
      const up = dirname(d);
      if (up === d) return Number.POSITIVE_INFINITY;
      d = up;
    }
  }
}

/** What a writer keeps free beyond what it writes: 1%, at least 256 MB. */
export const diskMarginBytes = (needBytes: number) => Math.max(256e6, needBytes * 0.01);

/** Do `needBytes` more fit on the disk of `path`, with the margin to spare? */
export const fitsOnDisk = (path: string, needBytes: number) => needBytes <= 0 || freeDiskBytes(path) >= needBytes + diskMarginBytes(needBytes);

/** Stop before starting when the disk of `path` cannot hold `needBytes` more (with the margin). */
export function checkFreeDisk(path: string, needBytes: number, what: string, hint = "free some space, or write to another disk"): void {
  if (fitsOnDisk(path, needBytes)) return;
  throw new UserError(`not enough free disk for ${what}: it needs ${formatBytes(needBytes)} in ${path}, ${formatBytes(freeDiskBytes(path))} is free`, hint);
}
