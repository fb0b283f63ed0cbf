// Benchmark statistics: warm-up, then repeated timed runs summarised as median / min / max (never a single run).

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** number of measured runs (warm-up runs excluded) */
  n: number;
}

/** Median, min and max of samples; the median of an even count is the mean of the two middle values. */
export function summarize(samples: readonly number[]): Summary {
  const xs = samples.filter((x) => Number.isFinite(x));
  if (xs.length === 0) throw new Error("bug: summarize() of no finite samples");
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

/** A summary of rates from a summary of durations: 1 / time, so min and max swap. */
export function invertSummary(d: Summary, numerator = 1): Summary {
  return { median: numerator / d.median, min: numerator / d.max, max: numerator / d.min, n: d.n };
}

/** Scale every figure of a summary (unit conversions). */
export const scaleSummary = (s: Summary, k: number): Summary => ({ median: s.median * k, min: s.min * k, max: s.max * k, n: s.n });

export interface RepeatOptions {
  /** runs thrown away before measuring (caches, JIT, page cache, CPU frequency) */
  warmup: number;
  /** measured runs; at least 2 */
  runs: number;
}

/**
 * Run `fn` warm-up + measured times, one after another, and return the measured values.
 * `fn` returns the figure of one run (e.g. tok/s, or milliseconds it timed itself).
 */
export async function repeat<T>(opts: RepeatOptions, fn: (run: number) => Promise<T> | T): Promise<T[]> {
  if (opts.runs < 2) throw new Error(`bug: repeat() needs at least 2 measured runs, got ${opts.runs}`);
  for (let i = 0; i < opts.warmup; i++) await fn(-1 - i);
  const out: T[] = [];
  for (let i = 0; i < opts.runs; i++) out.push(await fn(i));
  return out;
}

/** Time `fn` (milliseconds per run) with warm-up and repetition. */
export async function timeRuns(opts: RepeatOptions, fn: (run: number) => Promise<unknown> | unknown): Promise<Summary> {
  const ms = await repeat(opts, async (i) => {
    const t0 = performance.now();
    await fn(i);
    return performance.now() - t0;
  });
  return summarize(ms);
}

/** Summarise each named field across runs: [{a:1,b:2},{a:3,b:4}] -> {a: Summary, b: Summary}. Missing or non-finite values are skipped. */
export function summarizeFields<K extends string>(runs: readonly Partial<Record<K, number>>[], fields: readonly K[]): Partial<Record<K, Summary>> {
  const out: Partial<Record<K, Summary>> = {};
  for (const f of fields) {
    const xs = runs.map((r) => r[f]).filter((x): x is number => typeof x === "number" && Number.isFinite(x));
    if (xs.length) out[f] = summarize(xs);
  }
  return out;
}

/** "12.3 (11.9–12.8)" — median with the range, to a sensible number of significant digits. */
export function formatSummary(s: Summary, digits = 3): string {
  return `${formatNumber(s.median, digits)} (${formatNumber(s.min, digits)}–${formatNumber(s.max, digits)})`;
}

/** A number to `digits` significant digits without exponent noise for everyday magnitudes. */
export function formatNumber(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return "0";
  const mag = Math.floor(Math.log10(Math.abs(x)));
  if (mag >= digits - 1) return Math.round(x).toString();
  if (mag < -6) return x.toExponential(digits - 1);
  return x.toFixed(Math.max(0, digits - 1 - mag));
}
