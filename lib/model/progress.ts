// Byte progress for long copies: bytes/s and ETA, reported through a callback and (by default) the logger at most every few seconds.
import { logger } from "../log.ts";

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

export const formatBytes = (n: number) =>
  n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`;

export const formatDuration = (s: number) =>
  !Number.isFinite(s) ? "?" : s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, "0")}s` : `${s.toFixed(0)}s`;

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
