// Recorded benchmark figures (from real runs) used by the history, report and roofline tests.
import type { BenchRecord } from "../../lib/bench/history.ts";

const epyc = { cpu: "AMD EPYC", cores: 2, ramGiB: 23.5, os: "Linux 6.18.44 x64" };
const m1 = { cpu: "Apple M3 Max", cores: 16, ramGiB: 48, os: "Darwin 24.1.0 arm64" };

export function recorded(): BenchRecord[] {
  const r = (date: string, commit: string, machine: typeof epyc, model: string, target: string, figure: string, unit: string, median: number, min: number, max: number, ceilings?: BenchRecord["ceilings"]): BenchRecord => ({
    date, commit, machine, model, quantization: "4bit", target, figure, unit, stats: { median, min, max, n: 5 }, ceilings,
  });
  return [
    r("2026-11-20T10:00:00.000Z", "aaaa111", epyc, "qwen3.5-397b-sliced", "fullbench", "decode_tok_s", "tok/s", 2.1, 1.9, 2.3, { memory: 10.2, disk: 3.3, kernel: 2.6 }),
    r("2026-11-20T10:00:01.000Z", "aaaa111", epyc, "qwen3.6-35b-sliced", "fullbench", "decode_tok_s", "tok/s", 9.5, 9.1, 9.9, { memory: 40.1, disk: 12.0, kernel: 11.2 }),
    r("2026-11-20T10:00:02.000Z", "aaaa111", epyc, "qwen3.5-397b-sliced", "e2e", "ttft_ms", "ms", 820, 790, 900),
    r("2026-11-21T09:00:00.000Z", "bbbb222", epyc, "qwen3.5-397b-sliced", "fullbench", "decode_tok_s", "tok/s", 2.4, 2.2, 2.5, { memory: 10.2, disk: 3.3, kernel: 2.6 }),
    r("2026-11-21T09:00:01.000Z", "bbbb222", epyc, "qwen3.6-35b-sliced", "fullbench", "decode_tok_s", "tok/s", 10.1, 9.8, 10.3, { memory: 40.1, disk: 12.0, kernel: 11.2 }),
    r("2026-11-22T08:00:00.000Z", "cccc333", m1, "qwen3.5-397b-sliced", "fullbench", "decode_tok_s", "tok/s", 4.4, 4.3, 4.6, { memory: 30.5, disk: 5.2, kernel: null }),
  ];
}
