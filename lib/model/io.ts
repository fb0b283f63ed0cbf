// Low-level file I/O for the artifact writers: full preads/pwrites, the open-file cache, the temporary name they write to.
import { closeSync, mkdirSync, openSync, readSync, writeSync } from "node:fs";
import { basename, dirname } from "pathe";
import { UserError } from "../errors.ts";

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

export function openForWrite(path: string): number {
  mkdirSync(dirname(path), { recursive: true });
  return openSync(path, "w", 0o644);
}

/** Artifact writers fill NAME.tmp (one fixed name: the setup lock keeps it to one writer, and a rerun removes a
 * leftover one) and commit it with lib/fs commitFile. */
export const tmpName = (path: string) => `${path}.tmp`;
export const shortName = (path: string) => basename(path);
