// Benchmark statistics: warm-up, then repeated timed runs summarised as median with its spread (p10–p90 and
// min–max; never a single run).

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** 10th and 90th percentiles (linear between neighbours); absent in records written before they were kept */
  p10?: number;
  p90?: number;
  /** number of measured samples (warm-up runs excluded) */
  n: number;
}

/** The q-quantile (0..1) of sorted values, linear between neighbours (q = 0.5 of an even count: the mean of the middle two). */
export function quantileSorted(s: readonly number[], q: number): number {
  const pos = q * (s.length - 1);
  const i = Math.floor(pos);
  return i + 1 < s.length ? s[i]! + (pos - i) * (s[i + 1]! - s[i]!) : s[s.length - 1]!;
}

/** Median, p10, p90, min and max of samples; the median of an even count is the mean of the two middle values. */
export function summarize(samples: readonly number[]): Summary {
  const xs = samples.filter((x) => Number.isFinite(x));
  if (xs.length === 0) throw new Error("bug: summarize() of no finite samples");
  const s = [...xs].sort((a, b) => a - b);
  return { median: quantileSorted(s, 0.5), min: s[0]!, max: s[s.length - 1]!, p10: quantileSorted(s, 0.1), p90: quantileSorted(s, 0.9), n: s.length };
}

/** A summary of rates from a summary of durations: 1 / time, so min and max (and p10 and p90) swap. */
export function invertSummary(d: Summary, numerator = 1): Summary {
  const out: Summary = { median: numerator / d.median, min: numerator / d.max, max: numerator / d.min, n: d.n };
  if (d.p10 !== undefined && d.p90 !== undefined) Object.assign(out, { p10: numerator / d.p90, p90: numerator / d.p10 });
  return out;
}

/** Scale every figure of a summary (unit conversions). */
export const scaleSummary = (s: Summary, k: number): Summary => {
  const out: Summary = { median: s.median * k, min: s.min * k, max: s.max * k, n: s.n };
  if (s.p10 !== undefined && s.p90 !== undefined) Object.assign(out, { p10: s.p10 * k, p90: s.p90 * k });
  return out;
};

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

/**
 * The spread of a summary as text: "p10–p90 11.9–12.8" from 10 samples on (a percentile of fewer is one of the
 * extremes anyway), else "min–max 11.9–12.8".
 */
export function formatSpread(s: Summary, digits = 3): string {
  if (s.n >= 10 && s.p10 !== undefined && s.p90 !== undefined) return `p10–p90 ${formatNumber(s.p10, digits)}–${formatNumber(s.p90, digits)}`;
  return `min–max ${formatNumber(s.min, digits)}–${formatNumber(s.max, digits)}`;
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
