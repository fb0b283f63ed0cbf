// The engine's own benchmark figures on the fixture model, with the real binary: decode timed per forward pass
// (tok/s over the right number of passes), per-layer time and bytes, the experts' I/O counters and the page cache
// limit, and the protocol's decode rate (N tokens come from N-1 decode passes). Logic only: no timing limits.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync, statSync } from "node:fs";
import { join } from "pathe";
import { buildEngine, ENGINE, makeFixtureArtifacts, prompt, removeDir } from "../engine/_fixture.ts";

let artifacts = "";
beforeAll(async () => {
  await buildEngine();
  artifacts = await makeFixtureArtifacts();
});
afterAll(() => removeDir(artifacts));

type Json = Record<string, any>;
/** a and b within a relative `tol` (the engine prints its figures rounded) */
const near = (a: number, b: number, tol = 3e-3) => expect(Math.abs(a / b - 1)).toBeLessThan(tol);

function engineJson(args: string[]): Json {
  const r = Bun.spawnSync([ENGINE, ...args, "--json"], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`engine ${args.join(" ")} exited ${r.exitCode}: ${r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString().trim().split("\n").at(-1)!);
}

const fullbench = (...extra: string[]) => engineJson(["bench", "fullbench", "--artifacts", artifacts, "--threads", "1", ...extra]);
const expertFilesBytes = () =>
  readdirSync(join(artifacts, "packed_experts")).filter((f) => f.endsWith(".bin")).reduce((a, f) => a + statSync(join(artifacts, "packed_experts", f)).size, 0);

test("fullbench: one timed pass per token, tok/s = 1000 / median ms, spread from the per-token times", () => {
  const j = fullbench("--iters", "7");
  expect([j.iters, j.warmup, j.token_ms.length]).toEqual([7, 2, 7]);
  const sorted = [...j.token_ms].sort((a: number, b: number) => a - b);
  near(j.ms_per_op, sorted[3]);
  near(j.ops_per_s * j.ms_per_op, 1000);
  near(j.tok_s_min, 1000 / sorted[6]);
  near(j.tok_s_max, 1000 / sorted[0]);
  expect(j.tok_s_p10).toBeLessThanOrEqual(j.ops_per_s + 1e-6);
  expect(j.tok_s_p90).toBeGreaterThanOrEqual(j.ops_per_s - 1e-6);
  // a single iteration is one pass (no warm-up counted in)
  const one = fullbench("--iters", "1");
  expect([one.iters, one.warmup, one.token_ms.length]).toEqual([1, 0, 1]);
  near(one.ms_per_op, one.token_ms[0]);
});

test("fullbench: per-layer time and bytes add up to the token's bytes; the fixture's 4th layer is full attention", () => {
  const j = fullbench("--iters", "4");
  expect(j.layers.map((l: Json) => l.kind)).toEqual(["linear", "linear", "linear", "full"]);
  const layerBytes = j.layers.reduce((a: number, l: Json) => a + l.dense_bytes + l.expert_bytes, 0);
  expect(layerBytes + j.head_bytes).toBe(j.bytes_per_op);
  for (const l of j.layers) expect(l.ms).toBeGreaterThan(0);
  expect(j.head_ms).toBeGreaterThan(0);
  // the memory ceiling is a read bandwidth measured with the engine's threads
  expect(j.memory_read_gbps).toBeGreaterThan(0);
  near(j.fraction_of_memory_ceiling, j.gbps / j.memory_read_gbps, 2e-2);
});

test("expert I/O counters: K reads per layer per pass; a warm pread run reads nothing from disk", () => {
  const j = fullbench("--iters", "5", "--expert-io", "pread");
  expect(j.expert_io).toBe("pread");
  // K = 2 experts in each of 4 layers, 5 timed passes
  expect(j.expert_reads).toBe(2 * 4 * 5);
  expect(j.expert_bytes_read).toBe(j.expert_reads * (j.layers[0].expert_bytes / 2));
  // the warm-up passes (and earlier runs) brought every expert read into the page cache
  expect(j.expert_bytes_cached).toBe(j.expert_bytes_read);
  expect(j.expert_bytes_from_disk).toBe(0);
  const m = fullbench("--iters", "3", "--expert-io", "populate");
  expect([m.expert_io, m.expert_bytes_from_disk]).toEqual(["populate", 0]);
});

test("a page cache limit below the experts streams them: what was dropped is read again from disk", () => {
  const expertBytes = fullbench("--iters", "1").layers[0].expert_bytes / 2;
  // room for 3 experts; a token reads 8 (2 in each of 4 layers), so almost nothing read survives to its next use
  const tight = fullbench("--iters", "10", "--expert-io", "pread", "--expert-cache-mb", String((3 * expertBytes) / 2 ** 20));
  expect(tight.expert_cache_limit).toBe(3 * expertBytes);
  expect(tight.expert_bytes_from_disk).toBeGreaterThan(tight.expert_bytes_read / 2);
  expect(tight.expert_bytes_from_disk + tight.expert_bytes_cached).toBe(tight.expert_bytes_read);
  // a limit above all the expert files: after the first touches (dropped at start) every read is a hit
  const roomy = fullbench("--iters", "40", "--expert-io", "pread", "--expert-cache-mb", String((2 * expertFilesBytes()) / 2 ** 20));
  expect(roomy.expert_bytes_from_disk).toBeLessThanOrEqual(expertFilesBytes());
  expect(roomy.expert_bytes_cached).toBeGreaterThan(roomy.expert_bytes_read / 2);
});

test("the page cache limit needs pread, and a positive size", () => {
  const mapped = Bun.spawnSync([ENGINE, "bench", "fullbench", "--artifacts", artifacts, "--expert-io", "populate", "--expert-cache-mb", "1"], { stderr: "pipe", stdout: "pipe" });
  expect(mapped.exitCode).toBe(2);
  expect(mapped.stderr.toString()).toContain("needs the experts read with pread");
  const bad = Bun.spawnSync([ENGINE, "bench", "fullbench", "--artifacts", artifacts, "--expert-cache-mb", "0"], { stderr: "pipe" });
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr.toString()).toContain("--expert-cache-mb: bad value 0");
});

test("membw: read bandwidth for 1..N threads and the clock, no model needed", () => {
  const j = engineJson(["bench", "membw", "--threads", "2", "--iters", "2"]);
  expect(j.results.map((r: Json) => r.threads)).toEqual([1, 2]);
  for (const r of j.results) expect(r.min).toBeLessThanOrEqual(r.read_gbps);
  expect(j.buffer_mib_per_thread).toBe(64);
  if (process.arch === "x64" || process.arch === "arm64") expect(j.clock_ghz).toBeGreaterThan(0.3);
});

test("protocol: a request's N tokens take N-1 decode passes, and stats' tokens_per_s divides by the passes", async () => {
  await using proc = Bun.spawn([ENGINE, "--artifacts", artifacts, "--threads", "1", "--context", "64"], { stdin: "pipe", stdout: "pipe", stderr: "ignore" });
  const ids = prompt().slice(0, 6);
  proc.stdin.write(`${JSON.stringify({ op: "generate", id: "g", tokens: ids, max_tokens: 5 })}\n`);
  proc.stdin.flush();
  const replies: Json[] = [];
  let buf = "";
  const decoder = new TextDecoder();
  for await (const chunk of proc.stdout) {
    buf += decoder.decode(chunk);
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const m = JSON.parse(buf.slice(0, nl)) as Json;
      replies.push(m);
      buf = buf.slice(nl + 1);
      // stats once the request is done (a stats request during a generate is answered at once, before its totals)
      if (m.type === "done") {
        proc.stdin.write(`${JSON.stringify({ op: "stats", id: "s" })}\n`);
        proc.stdin.flush();
      }
    }
    if (replies.some((r) => r.type === "stats")) break;
  }
  proc.stdin.end();
  const done = replies.find((r) => r.type === "done")!;
  const stats = replies.find((r) => r.type === "stats")!;
  expect(done.completion_tokens).toBe(5);
  expect(done.decode_passes).toBe(4);
  expect([stats.completion_tokens, stats.decode_passes]).toEqual([5, 4]);
  // 4 passes, not 5 tokens, over the decode time (the two differ by 25%)
  near(stats.tokens_per_s, 4 / (stats.decode_ms / 1000), 1e-2);
});
