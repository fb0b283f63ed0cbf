// A byte progress bar on stderr (bytes, rate, ETA); without a terminal, a log line now and then and a summary.
import { logger } from "../log.ts";

export interface ByteProgress {
  /** Add `n` bytes done. */
  add(n: number): void;
  /** Bytes already present before this run (resumed): counted as done, not in the rate. */
  skip(n: number): void;
  done(): void;
}

export interface ProgressOptions {
  label: string;
  totalBytes: number;
  /** Where to draw; default process.stderr. */
  stream?: NodeJS.WriteStream | { isTTY?: boolean; columns?: number; write(s: string): unknown };
  /** Clock, for tests. */
  nowMs?: () => number;
  /** Without a terminal: a progress line in the log this often (default 30 s). */
  logEveryMs?: number;
}

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

/** 1234567 -> "1.2 MB" (decimal units, as disks and the Hub count). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "?";
  let i = 0;
  let v = Math.abs(n);
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  const s = i === 0 ? String(Math.round(v)) : v >= 100 ? v.toFixed(0) : v.toFixed(1);
  return `${n < 0 ? "-" : ""}${s} ${UNITS[i]}`;
}

/** Seconds -> "42s", "3m05s", "2h10m". */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "--";
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** One line: label, bar, done/total, rate, ETA. Pure, for tests. */
export function renderProgressLine(
  o: { label: string; doneBytes: number; totalBytes: number; rateBytesPerSec: number },
  width = 80,
): string {
  const frac = o.totalBytes > 0 ? Math.min(1, o.doneBytes / o.totalBytes) : 1;
  const eta = o.rateBytesPerSec > 0 ? (o.totalBytes - o.doneBytes) / o.rateBytesPerSec : Number.NaN;
  const tail = ` ${formatBytes(o.doneBytes)} / ${formatBytes(o.totalBytes)}  ${formatBytes(o.rateBytesPerSec)}/s  ETA ${formatDuration(eta)}`;
  const head = `${o.label} ${String(Math.floor(frac * 100)).padStart(3)}% `;
  const barWidth = Math.max(10, Math.min(40, width - head.length - tail.length - 3));
  const filled = Math.round(frac * barWidth);
  return `${head}[${"#".repeat(filled)}${".".repeat(barWidth - filled)}]${tail}`;
}

export function createByteProgress(opts: ProgressOptions): ByteProgress {
  const stream = opts.stream ?? process.stderr;
  const now = opts.nowMs ?? (() => performance.now());
  const tty = Boolean(stream.isTTY) && logger.level >= 3;
  const start = now();
  let done = 0;
  let skipped = 0;
  let lastDraw = start;
  let finished = false;
  // rate over a sliding window so a stall shows up in the ETA
  const samples: Array<[number, number]> = [[start, 0]];

  const rate = () => {
    const t = now();
    while (samples.length > 2 && t - samples[0]![0] > 10_000) samples.shift();
    const [t0, b0] = samples[0]!;
    return t > t0 ? ((done - skipped - b0) * 1000) / (t - t0) : 0;
  };
  const draw = (force = false) => {
    const t = now();
    if (!tty) {
      // a log (CI, a pipe): one line every `logEveryMs`, no redrawing
      if (t - lastDraw < (opts.logEveryMs ?? 30_000) || logger.level < 3) return;
      lastDraw = t;
      samples.push([t, done - skipped]);
      logger.info(renderProgressLine({ label: opts.label, doneBytes: done, totalBytes: opts.totalBytes, rateBytesPerSec: rate() }, 100));
      return;
    }
    if (!force && t - lastDraw < 100) return;
    lastDraw = t;
    samples.push([t, done - skipped]);
    const width = (stream as { columns?: number }).columns ?? 80;
    stream.write(`\r${renderProgressLine({ label: opts.label, doneBytes: done, totalBytes: opts.totalBytes, rateBytesPerSec: rate() }, width)}\x1b[K`);
  };

  return {
    add(n) {
      done += n;
      draw();
    },
    skip(n) {
      done += n;
      skipped += n;
      draw();
    },
    done() {
      if (finished) return;
      finished = true;
      const sec = (now() - start) / 1000;
      const moved = done - skipped;
      if (tty) {
        draw(true);
        stream.write("\n");
      }
      const avg = sec > 0 ? moved / sec : 0;
      logger.info(
        `${opts.label}: ${formatBytes(done)}${skipped ? ` (${formatBytes(skipped)} already there)` : ""} in ${sec < 10 ? `${sec.toFixed(1)}s` : formatDuration(sec)}${moved > 0 ? `, ${formatBytes(avg)}/s` : ""}`,
      );
    },
  };
}
