// Low-level file I/O for the artifact writers: full preads/pwrites, ranged copies, open-file cache, free-space check, fsync + rename.
import { closeSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, statfsSync, writeSync } from "node:fs";
import { basename, dirname } from "pathe";
import { UserError } from "../errors.ts";
import { fsyncDir } from "../fs.ts";
import { formatBytes } from "./progress.ts";

export function preadFull(fd: number, buf: Uint8Array, position: number, what = "file"): void {
  let got = 0;
  while (got < buf.length) {
    const r = readSync(fd, buf, got, buf.length - got, position + got);
    if (r === 0) throw new UserError(`${what}: unexpected end of file at byte ${position + got}`, "the file shrank while being read, or is truncated");
    got += r;
  }
}

export function pwriteFull(fd: number, buf: Uint8Array, position: number): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, position + off);
}

/** Opens each path once (read-only) and closes them all at the end. */
export function createFdCache() {
  const fds = new Map<string, number>();
  return {
    get(path: string): number {
      let fd = fds.get(path);
      if (fd === undefined) {
        fd = openSync(path, "r");
        fds.set(path, fd);
      }
      return fd;
    },
    close() {
      for (const fd of fds.values()) closeSync(fd);
      fds.clear();
    },
  };
}
export type FdCache = ReturnType<typeof createFdCache>;

/** Bytes available to us on the filesystem holding `dir` (its nearest existing ancestor). */
export function freeBytes(dir: string): number {
  let d = dir;
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

/** UserError unless `neededBytes` fit on the filesystem of `dir` (with 1% + 64 MB to spare). */
export function checkFreeSpace(dir: string, neededBytes: number, what: string): void {
  const free = freeBytes(dir);
  const margin = neededBytes * 0.01 + 64e6;
  if (neededBytes + margin > free)
    throw new UserError(`not enough disk space for ${what}: needs ${formatBytes(neededBytes)} (${neededBytes} bytes), ${formatBytes(free)} free in ${dir}`, "free some space or choose another --out folder");
}

/** fsync `tmp`, rename it to `path`, fsync the folder: the file appears complete or not at all. */
export function commitFile(fd: number, tmp: string, path: string): void {
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

export function openForWrite(path: string): number {
  mkdirSync(dirname(path), { recursive: true });
  return openSync(path, "w", 0o644);
}

export const tmpName = (path: string) => `${path}.tmp`;
export const shortName = (path: string) => basename(path);
