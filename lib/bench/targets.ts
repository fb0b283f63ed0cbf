// The benchmark targets: name, what it measures, and the lib/bench module that implements it.
export interface BenchTarget {
  name: string;
  description: string;
  /** module under lib/bench/ */
  file: string;
  /** named export holding the citty command (default export when absent) */
  exportName?: string;
}

export const BENCH_TARGETS: readonly BenchTarget[] = [
  { name: "standard", description: "The standard set on generated 397B- and 35B-shaped models (make bench)", file: "standard.ts" },
  { name: "report", description: "Results history as a table and an SVG chart of tok/s over commits", file: "report.ts" },
  { name: "run", description: "One expert forward pass", file: "engine.ts", exportName: "run" },
  { name: "verify", description: "Optimized kernels (and GPU backends) against the plain C reference", file: "engine.ts", exportName: "verify" },
  { name: "bench", description: "One expert, 10 iterations: time per op and GB/s", file: "engine.ts", exportName: "bench" },
  { name: "moe", description: "One MoE layer with K experts", file: "engine.ts", exportName: "moe" },
  { name: "moebench", description: "One MoE layer with K experts, repeated: time and GB/s", file: "engine.ts", exportName: "moebench" },
  { name: "full", description: "The whole model for one token", file: "engine.ts", exportName: "full" },
  { name: "fullbench", description: "Whole-model decode, repeated: tok/s with spread, per-layer time and bytes, expert I/O, roofline", file: "engine.ts", exportName: "fullbench" },
  { name: "prefill", description: "Prefill tok/s of a prompt from an empty context, beside the compute ceiling", file: "engine.ts", exportName: "prefill" },
  { name: "membw", description: "Memory read bandwidth per thread count (decode's memory ceiling) and the clock", file: "engine.ts", exportName: "membw" },
  { name: "kernels", description: "Single-core matvec throughput per bit width (the kernel ceiling's input)", file: "engine.ts", exportName: "kernels" },
  { name: "e2e", description: "Through the real server: time to first token, prefill and decode tok/s", file: "e2e.ts" },
  { name: "agent", description: "An agent's turns 1 and 2 through the real server: time to first token at 8k and 32k tokens", file: "agent.ts" },
  { name: "health", description: "/health latency p50/p99 while clients send 1 MiB prompts (worker vs event loop)", file: "health.ts" },
  { name: "prep", description: "extract-weights and repack-experts throughput against cp", file: "prep.ts" },
  { name: "tui", description: "TUI start to first frame and memory, beside `bun -e` and the least OpenTUI program started the same way", file: "tui.ts" },
  { name: "cli", description: "CLI start-up as ratios to `bun -e 0` (--version, config get, status) and one-shot prompt end to end", file: "cli.ts" },
  { name: "logits", description: "Write the engine's logits for given tokens (reference checks)", file: "logits.ts" },
];

export const findBenchTarget = (name: string) => BENCH_TARGETS.find((t) => t.name === name);
