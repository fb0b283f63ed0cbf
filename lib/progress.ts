// Progress for long work: the byte tracker the model writers report through, the bar (a terminal) or log
// lines (pipes, CI) that show it, and the spinner for waits with no byte count.
import { formatBytes, formatDuration, formatElapsed } from "./format.ts";
import { isQuiet, logger } from "./log.ts";

export interface ProgressEvent {
  label: string;
  doneBytes: number;
  totalBytes: number;
  bytesPerSec: number;
  etaSec: number;
  /** what is being worked on, e.g. "layer 3" */
  detail?: string;
}

export type ProgressFn = (p: ProgressEvent) => void;

/** One log line: "repack: 500 MB / 1.0 GB (50.0%), 250 MB/s, ETA 2s — layer_03.bin". */
export function renderProgress(p: ProgressEvent): string {
  const pct = p.totalBytes ? ((100 * p.doneBytes) / p.totalBytes).toFixed(1) : "100";
  return `${p.label}: ${formatBytes(p.doneBytes)} / ${formatBytes(p.totalBytes)} (${pct}%), ${formatBytes(p.bytesPerSec)}/s, ETA ${formatDuration(p.etaSec)}${p.detail ? ` — ${p.detail}` : ""}`;
}

/** A tracker: call add(n) as bytes complete; it reports through onProgress (every call) or logs every `intervalMs`. */
export function createProgress(label: string, totalBytes: number, onProgress?: ProgressFn, intervalMs = 2000) {
  const start = performance.now();
  let done = 0;
  let lastLog = start;
  let detail: string | undefined;
  const event = (): ProgressEvent => {
    const sec = (performance.now() - start) / 1000;
    const rate = sec > 0 ? done / sec : 0;
    return { label, doneBytes: done, totalBytes, bytesPerSec: rate, etaSec: rate > 0 ? (totalBytes - done) / rate : Number.POSITIVE_INFINITY, detail };
  };
  return {
    setDetail(d: string) {
      detail = d;
    },
    add(n: number) {
      done += n;
      const now = performance.now();
      if (onProgress) onProgress(event());
      else if (now - lastLog >= intervalMs) {
        lastLog = now;
        logger.info(renderProgress(event()));
      }
    },
    get doneBytes() {
      return done;
    },
    elapsedSec: () => (performance.now() - start) / 1000,
    event,
  };
}

/** One bar line: label, percent, bar, done/total, rate, ETA. Pure, for tests. */
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

type Stream = NodeJS.WriteStream | { isTTY?: boolean; columns?: number; write(s: string): unknown };

export interface ByteProgress {
  /** Add `n` bytes done. */
  add(n: number): void;
  /** Bytes already present before this run (resumed): counted as done, not in the rate. */
  skip(n: number): void;
  done(): void;
}

export interface ByteProgressOptions {
  label: string;
  totalBytes: number;
  /** Where to draw; default process.stderr. */
  stream?: Stream;
  /** Clock, for tests. */
  nowMs?: () => number;
  /** Without a terminal: a progress line in the log this often (default 30 s). */
  logEveryMs?: number;
}

/** A byte progress bar on stderr (bytes, rate over the last 10 s, ETA); without a terminal, a log line now and then and a summary. */
export function createByteProgress(opts: ByteProgressOptions): ByteProgress {
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
    stream.write(`\r${renderProgressLine({ label: opts.label, doneBytes: done, totalBytes: opts.totalBytes, rateBytesPerSec: rate() }, stream.columns ?? 80)}\x1b[K`);
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
      logger.info(`${opts.label}: ${formatBytes(done)}${skipped ? ` (${formatBytes(skipped)} already there)` : ""} in ${formatElapsed(sec)}${moved > 0 ? `, ${formatBytes(avg)}/s` : ""}`);
    },
  };
}

/**
 * A ProgressFn drawing tracker events as a bar on a terminal (at most every 100 ms), with end() closing the line;
 * undefined without a terminal or with -q, where the tracker's own log lines do.
 */
export function createProgressPrinter(label: string, stream: Stream = process.stderr): { onProgress: ProgressFn; end(): void } | undefined {
  if (!stream.isTTY || logger.level < 3) return undefined;
  let last = 0;
  let open = false;
  return {
    onProgress(p) {
      const now = performance.now();
      if (now - last < 100 && p.doneBytes < p.totalBytes) return;
      last = now;
      open = true;
      stream.write(`\r${renderProgressLine({ label, doneBytes: p.doneBytes, totalBytes: p.totalBytes, rateBytesPerSec: p.bytesPerSec }, stream.columns ?? 80)}\x1b[K`);
    },
    end() {
      if (open) stream.write("\n");
      open = false;
    },
  };
}

export interface Spinner {
  update(text: string): void;
  stop(): void;
}

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/**
 * A spinner on one line of a terminal: `frame text` redrawn in place until stop() clears the line. `style` may
 * dim it; `elapsed` appends the seconds waited. Without a terminal: `plainLine` is written once (or nothing).
 */
export function createSpinner(
  text: string,
  opts: { write?: (s: string) => void; tty?: boolean; style?: (s: string) => string; elapsed?: boolean; intervalMs?: number; plainLine?: boolean } = {},
): Spinner {
  const write = opts.write ?? ((s: string) => void process.stderr.write(s));
  if (isQuiet()) return { update() {}, stop() {} }; // -q: no progress
  const tty = opts.tty ?? Boolean(process.stderr.isTTY);
  if (!tty) {
    if (opts.plainLine) write(`${text}\n`);
    return { update() {}, stop() {} };
  }
  const style = opts.style ?? ((s: string) => s);
  const t0 = Date.now();
  let i = 0;
  let shown = true;
  const draw = () => write(`\r\x1b[K${style(`${FRAMES[i++ % FRAMES.length]} ${text}${opts.elapsed ? ` ${Math.round((Date.now() - t0) / 1000)}s` : ""}`)}`);
  draw();
  const timer = setInterval(draw, opts.intervalMs ?? 100);
  return {
    update(t) {
      text = t;
    },
    stop() {
      if (!shown) return;
      shown = false;
      clearInterval(timer);
      write("\r\x1b[K");
    },
  };
}
