import { describe, expect, test } from "bun:test";
import { formatNumber, formatSpread, formatSummary, invertSummary, quantileSorted, repeat, scaleSummary, summarize, summarizeFields, timeRuns } from "../../lib/bench/stats.ts";

describe("summarize", () => {
  test("odd count: the middle value; min and max", () => {
    expect(summarize([5, 1, 3])).toEqual({ median: 3, min: 1, max: 5, p10: 1.4, p90: 4.6, n: 3 });
  });
  test("even count: the mean of the two middle values", () => {
    expect(summarize([4, 1, 3, 10])).toMatchObject({ median: 3.5, min: 1, max: 10, n: 4 });
  });
  test("non-finite samples are ignored; none at all is a bug", () => {
    expect(summarize([2, Number.NaN, 4, Number.POSITIVE_INFINITY])).toMatchObject({ median: 3, min: 2, max: 4, n: 2 });
    expect(() => summarize([])).toThrow(/no finite samples/);
  });
  test("input order is not changed", () => {
    const xs = [3, 1, 2];
    summarize(xs);
    expect(xs).toEqual([3, 1, 2]);
  });
});

test("rates from durations swap min and max", () => {
  // recorded: decode ms per token
  expect(invertSummary({ median: 250, min: 200, max: 500, n: 5 }, 1000)).toEqual({ median: 4, min: 2, max: 5, n: 5 });
  // (summaries without p10/p90 stay without them)
  expect(scaleSummary({ median: 2, min: 1, max: 3, n: 3 }, 1000)).toEqual({ median: 2000, min: 1000, max: 3000, n: 3 });
});

test("summarizeFields skips missing values per field", () => {
  const s = summarizeFields<"a" | "b" | "c">([{ a: 1, b: 10 }, { a: 3 }, { a: 2, b: 30 }], ["a", "b", "c"]);
  expect(s).toMatchObject({ a: { median: 2, min: 1, max: 3, n: 3 }, b: { median: 20, min: 10, max: 30, n: 2 } });
  expect(s.c).toBeUndefined();
});

describe("percentiles", () => {
  test("p10 and p90 are linear between neighbours, over 1..11 they are 2 and 10", () => {
    const s = summarize(Array.from({ length: 11 }, (_, i) => 11 - i));
    expect([s.p10, s.median, s.p90, s.min, s.max, s.n]).toEqual([2, 6, 10, 1, 11, 11]);
    expect(quantileSorted([10, 20], 0.25)).toBe(12.5);
    expect(quantileSorted([7], 0.9)).toBe(7);
  });
  test("rates from durations swap p10 and p90 too; scaling keeps them", () => {
    const d = summarize([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100]);
    const r = invertSummary(d, 1000);
    expect(r.p10).toBeCloseTo(1000 / d.p90!, 9);
    expect(r.p90).toBeCloseTo(1000 / d.p10!, 9);
    expect(scaleSummary(d, 2).p90).toBe(2 * d.p90!);
  });
  test("the spread is p10–p90 from 10 samples on, else min–max", () => {
    expect(formatSpread(summarize([1, 2, 3]))).toBe("min–max 1.00–3.00");
    expect(formatSpread(summarize(Array.from({ length: 11 }, (_, i) => i + 1)))).toBe("p10–p90 2.00–10.0");
    // an old record without percentiles
    expect(formatSpread({ median: 5, min: 1, max: 9, n: 20 })).toBe("min–max 1.00–9.00");
  });
});

describe("repeat", () => {
  test("runs warm-up first, then the measured runs, and returns only the measured values", async () => {
    const calls: number[] = [];
    const out = await repeat({ warmup: 2, runs: 3 }, (i) => {
      calls.push(i);
      return i * 10;
    });
    expect(calls).toEqual([-1, -2, 0, 1, 2]);
    expect(out).toEqual([0, 10, 20]);
  });
  test("a single measured run is refused", async () => {
    await expect(repeat({ warmup: 0, runs: 1 }, () => 1)).rejects.toThrow(/at least 2/);
  });
  test("timeRuns gives a summary of milliseconds over the measured runs", async () => {
    const s = await timeRuns({ warmup: 1, runs: 3 }, async () => {});
    expect(s.n).toBe(3);
    expect(s.min).toBeGreaterThanOrEqual(0);
    expect(s.min).toBeLessThanOrEqual(s.median);
    expect(s.median).toBeLessThanOrEqual(s.max);
  });
});

test("number formatting keeps about 3 significant digits", () => {
  expect([formatNumber(4.4123), formatNumber(0.012345), formatNumber(1234.5), formatNumber(0), formatNumber(12.0)]).toEqual(["4.41", "0.0123", "1235", "0", "12.0"]);
  expect(formatSummary({ median: 4.41, min: 4.2, max: 4.6, n: 5 })).toBe("4.41 (4.20–4.60)");
});
