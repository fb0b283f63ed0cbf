// Fast assembly of an output file from byte ranges of source files: the output is built window by window in
// aligned memory (each piece pread straight into place, several in flight, one file descriptor per source
// stream so kernel readahead sees sequential reads) and each window written with O_DIRECT where the OS allows
// (Linux; macOS: F_NOCACHE on the file instead), several windows in flight. Memory stays at windowBytes x windows
// whatever the file size.
import { closeSync, constants, ftruncateSync, openSync, read, write } from "node:fs";
import { dlopen, FFIType, ptr } from "bun:ffi";
import { UserError } from "../errors.ts";

/** Bytes [srcOffset, srcOffset + size) of `file` go to [dstOffset, dstOffset + size) of the output. */
export interface Piece {
  file: string;
  srcOffset: number;
  size: number;
  dstOffset: number;
  /** pieces with the same file and stream share a file descriptor (one sequential reader each) */
  stream?: number;
}

export interface AssembleOptions {
  /** bytes per window (a multiple of 4096); default 8 MiB */
  windowBytes?: number;
  /** windows in flight; default 8 (measured best on a shared Linux VM: 8 MiB x 8) */
  windows?: number;
  /** O_DIRECT writes where supported (default true) */
  direct?: boolean;
  /** reads in flight across all windows (default 16: many more thrash readahead on a cold cache) */
  reads?: number;
  onBytes?: (n: number) => void;
}

const ALIGN = 4096;
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** A zeroed buffer whose address is a multiple of `align` (O_DIRECT needs it). */
export function alignedBuffer(size: number, align = ALIGN): Uint8Array {
  const raw = new Uint8Array(size + align);
  const off = (align - (Number(ptr(raw)) % align)) % align;
  return raw.subarray(off, off + size);
}

function preadAsync(fd: number, buf: Uint8Array, position: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const step = () =>
      read(fd, buf, got, buf.length - got, position + got, (err, n) => {
        if (err) return reject(err);
        if (n === 0) return reject(new UserError(`${what}: unexpected end of file at byte ${position + got}`, "the file shrank while being read, or is truncated"));
        got += n;
        if (got < buf.length) step();
        else resolve();
      });
    step();
  });
}

/** At most `n` tasks at once. */
function createLimiter(n: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await task();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

function pwriteAsync(fd: number, buf: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = () =>
      write(fd, buf, done, buf.length - done, position + done, (err, n) => {
        if (err) return reject(err);
        done += n;
        if (done < buf.length) step();
        else resolve();
      });
    step();
  });
}

const F_NOCACHE = 48; // <sys/fcntl.h> on macOS
let darwinFcntl: ((fd: number, cmd: number, value: number) => number) | null | undefined;

/**
 * macOS: bypass the unified buffer cache for `fd` (fcntl F_NOCACHE), the counterpart of Linux's O_DIRECT, so a big
 * write (a 200 GB repack) does not push everything else out of memory. True if set; false elsewhere or on failure.
 */
export function setNoCache(fd: number): boolean {
  if (process.platform !== "darwin") return false;
  if (darwinFcntl === undefined) {
    try {
      // fcntl(fd, cmd, ...) is variadic and bun:ffi calls fixed-argument functions. Apple's arm64 ABI passes a variadic
      // argument on the stack, where a fixed-argument call puts its 9th integer argument (8-byte slot); on x86-64 macOS
      // it goes in the 3rd argument register, like a fixed one.
      if (process.arch === "arm64") {
        const args = [...Array<FFIType>(8).fill(FFIType.i32), FFIType.i64];
        const f = dlopen("/usr/lib/libSystem.B.dylib", { fcntl: { args, returns: FFIType.i32 } }).symbols.fcntl;
        darwinFcntl = (fd, cmd, value) => f(fd, cmd, 0, 0, 0, 0, 0, 0, value) as number;
      } else {
        const f = dlopen("/usr/lib/libSystem.B.dylib", { fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 } }).symbols.fcntl;
        darwinFcntl = (fd, cmd, value) => f(fd, cmd, value) as number;
      }
    } catch {
      darwinFcntl = null;
    }
  }
  return darwinFcntl ? darwinFcntl(fd, F_NOCACHE, 1) !== -1 : false;
}

/**
 * Open `path` for writing (created/truncated), with O_DIRECT when asked and possible (Linux; macOS has none and gets
 * F_NOCACHE, with ordinary unaligned writes). Returns the fd and whether it is direct (O_DIRECT alignment rules apply).
 */
export function openOutput(path: string, direct: boolean): { fd: number; direct: boolean } {
  const base = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC;
  if (direct && process.platform === "darwin") {
    const fd = openSync(path, base, 0o644);
    setNoCache(fd);
    return { fd, direct: false };
  }
  const od = (constants as Record<string, number>).O_DIRECT; // Linux (macOS: F_NOCACHE above)
  if (direct && od) {
    try {
      return { fd: openSync(path, base | od, 0o644), direct: true };
    } catch {
      // filesystems such as tmpfs refuse O_DIRECT: fall back to buffered writes
    }
  }
  return { fd: openSync(path, base, 0o644), direct: false };
}

/**
 * Write `totalBytes` into the open file `fd` from `pieces` (non-overlapping; bytes no piece covers are zero).
 * With `direct`, the file is written in 4096-byte multiples and truncated to `totalBytes` at the end.
 */
export async function assembleInto(fd: number, direct: boolean, totalBytes: number, pieces: Piece[], opts: AssembleOptions = {}): Promise<void> {
  const windowBytes = opts.windowBytes ?? 8 << 20;
  if (windowBytes % ALIGN !== 0) throw new Error("assemble: windowBytes must be a multiple of 4096");
  const sorted = [...pieces].sort((a, b) => a.dstOffset - b.dstOffset);
  for (let i = 0; i < sorted.length; i++) {
    const p = sorted[i]!;
    if (p.dstOffset + p.size > totalBytes || (i > 0 && sorted[i - 1]!.dstOffset + sorted[i - 1]!.size > p.dstOffset))
      throw new Error(`assemble: piece at ${p.dstOffset} (+${p.size}) overlaps another or runs past ${totalBytes}`);
  }
  const fds = new Map<string, number>();
  const fdFor = (p: Piece) => {
    const key = `${p.stream ?? 0}\0${p.file}`;
    let fd = fds.get(key);
    if (fd === undefined) {
      fd = openSync(p.file, "r");
      fds.set(key, fd);
    }
    return fd;
  };
  const nWindows = Math.ceil(totalBytes / windowBytes);
  // first piece of each window (pieces are sorted by dstOffset)
  const firstPiece: number[] = [];
  for (let w = 0, i = 0; w < nWindows; w++) {
    while (i < sorted.length && sorted[i]!.dstOffset + sorted[i]!.size <= w * windowBytes) i++;
    firstPiece.push(i);
  }
  let next = 0;
  const limit = createLimiter(opts.reads ?? 16);
  const worker = async (buf: Uint8Array) => {
    while (next < nWindows) {
      const w = next++;
      const w0 = w * windowBytes;
      const w1 = Math.min(totalBytes, w0 + windowBytes);
      const reads: Promise<void>[] = [];
      let covered = w0;
      for (let i = firstPiece[w]!; i < sorted.length && sorted[i]!.dstOffset < w1; i++) {
        const p = sorted[i]!;
        const a = Math.max(p.dstOffset, w0);
        const b = Math.min(p.dstOffset + p.size, w1);
        if (a > covered) buf.fill(0, covered - w0, a - w0);
        covered = b;
        if (b > a) {
          const fd = fdFor(p);
          reads.push(limit(() => preadAsync(fd, buf.subarray(a - w0, b - w0), p.srcOffset + (a - p.dstOffset), p.file)));
        }
      }
      const writeLen = direct ? alignUp(w1 - w0, ALIGN) : w1 - w0;
      if (writeLen > covered - w0) buf.fill(0, covered - w0, writeLen);
      await Promise.all(reads);
      await pwriteAsync(fd, buf.subarray(0, writeLen), w0);
      opts.onBytes?.(w1 - w0);
    }
  };
  try {
    const n = Math.max(1, Math.min(opts.windows ?? 8, nWindows));
    await Promise.all(Array.from({ length: n }, () => worker(alignedBuffer(windowBytes))));
    ftruncateSync(fd, totalBytes); // drops the O_DIRECT padding of the last window (none on macOS)
  } finally {
    for (const f of fds.values()) closeSync(f);
  }
}
