// The e2e and standard targets run once each with the real engine and the real server, on the fixture model (e2e)
// and on a generated model of the fixture's shape (standard): output shape only, no timing assertions.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "pathe";
import { runAgentTarget } from "../../lib/bench/agent.ts";
import { runE2eTarget } from "../../lib/bench/e2e.ts";
import { historyPath, loadHistory } from "../../lib/bench/history.ts";
import { type BenchShape, prepareBenchModel, runStandard } from "../../lib/bench/standard.ts";
import { loadFlashchatConfig } from "../../lib/config/index.ts";
import type { ResolvedConfig } from "../../lib/config/schema.ts";
import { makeTempHome, repoRoot, runCli, type TempHome } from "../helpers/cli.ts";
import { prepareFixtureArtifacts, writeFixtureCheckpoint } from "../server/_real-model.ts";
import { writeTinyTokenizer } from "../server/_tiny-tokenizer.ts";

let t: TempHome;
let config: ResolvedConfig;
const smallProbes = { memory: { runs: 2 }, disk: { fileMiB: 4, runs: 2, cold: false } };

beforeAll(async () => {
  t = makeTempHome("flashchat-bench-targets-");
  config = await loadFlashchatConfig({ env: t.env, cwd: t.dir });
}, 120_000);
afterAll(() => t[Symbol.dispose]());

test("e2e on the fixture model: short and long prompt through the server, figures in the history", async () => {
  const model = join(t.dir, "fixture");
  const artifacts = join(t.dir, "fixture-artifacts");
  writeFixtureCheckpoint(model);
  await prepareFixtureArtifacts(model, artifacts);
  const r = await runE2eTarget(config, {
    artifactsDir: artifacts, tokenizerDir: model, model: "tiny-fixture",
    runs: 2, warmup: 0, decodeTokens: 4, shortWords: 4, longWords: 40, cold: false, history: true, machine: smallProbes, kernelGBsPerCore: null,
  });
  expect(r.ceilings.kernel).toBeNull();
  expect(r.cases.map((c) => [c.prompt, c.cache, c.ttftMs.n])).toEqual([["short", "warm", 2], ["long", "warm", 2]]);
  expect(r.tokenBytes.k).toBe(2);
  expect(r.ceilings.memory).toBeGreaterThan(0);
  expect(r.table.split("\n")[0]).toMatch(/^prompt\s+cache\s+tokens\s+TTFT ms/);
  const hist = loadHistory(historyPath(config));
  expect(hist.map((h) => h.figure)).toEqual(r.records.map((x) => x.figure));
  expect(hist.every((h) => h.target === "e2e" && h.model === "tiny-fixture" && h.quantization === "4bit")).toBe(true);
  expect(hist.some((h) => h.figure === "ttft_ms:long:warm")).toBe(true);
}, 120_000);

test("`benchmark e2e` from the command line: JSON figures on stdout (machine figures cached by the test above)", async () => {
  const r = await runCli(
    ["e2e", "--artifacts", join(t.dir, "fixture-artifacts"), "--tokenizer", join(t.dir, "fixture"), "--runs", "2", "--warmup", "0", "--decode-tokens", "3", "--long-words", "20", "--no-cold", "--no-history", "--json"],
    { env: t.env, script: join(repoRoot, "scripts", "benchmark.ts") },
  );
  expect(r.stderr).not.toContain(" at ");
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout);
  expect(out.cases.map((c: { prompt: string; cache: string }) => `${c.prompt}/${c.cache}`)).toEqual(["short/warm", "long/warm"]);
  expect(out.records.every((x: { model: string }) => x.model === "fixture-artifacts")).toBe(true);
  // the kernel ceiling comes from the engine's single-core kernel benchmark
  expect(out.ceilings.kernel).toBeGreaterThan(0);
  expect(existsSync(historyPath(config))).toBe(true);
  expect(loadHistory(historyPath(config)).some((h) => h.date === out.records[0].date)).toBe(false);
}, 120_000);

test("standard on a generated model of the fixture's shape: engine targets and e2e, one table, history rows", async () => {
  const tok = join(t.dir, "tiny-tokenizer");
  writeTinyTokenizer(tok);
  const shape: BenchShape = { name: "tiny-4l", preset: "tiny", layers: 4, description: "fixture dimensions", tokenizerDir: tok };
  const modelsDir = join(t.dir, "bench-models");
  const before = loadHistory(historyPath(config)).length;
  const r = await runStandard(config, {
    shapes: [shape], modelsDir, runs: 2, warmup: 0, e2e: true, e2eRuns: 2, cold: false, regenerate: false, remeasure: false, history: true,
    machine: smallProbes, e2eShortWords: 4, e2eLongWords: 30, e2eDecodeTokens: 4, prefillTokens: [16, 2048], decodeIters: 5, e2eTtftTokens: 300, agentSizes: [2048],
  });
  expect(r.failures).toEqual([]);
  const streamed = process.platform === "linux";
  expect(r.rows.filter((x) => x.target !== "e2e").map((x) => `${x.target}/${x.figure}/${x.stats.n}`)).toEqual([
    "bench/expert_ms/2", "bench/expert_gb_s/2", "moebench/layer_ms/2", "moebench/layer_gb_s/2",
    // decode: every timed token of both runs (2 x 5)
    "fullbench/decode_tok_s/10", "fullbench/decode_gb_s/10", "fullbench/kernel_gb_s_per_core/2",
    ...(streamed ? ["fullbench/decode_streamed_tok_s/10", "fullbench/streamed_disk_mb_per_token/2", "fullbench/streamed_cached_mb_per_token/2"] : []),
    "extrapolated/decode_tok_s_4l/2",
    "prefill/pp16_tok_s/2", "prefill/pp2048_tok_s/1",
    "agent/turn1_ttft_ms:2048/1", "agent/turn2_ttft_ms:2048/1", "agent/turn2_over_turn1:2048/1",
  ]);
  if (streamed) {
    // the page cache was held to half the expert files and emptied of them at start: some expert bytes came from disk,
    // and the streamed row's disk ceiling is for those bytes
    const disk = r.rows.find((x) => x.figure === "streamed_disk_mb_per_token")!;
    expect(disk.stats.median).toBeGreaterThan(0);
    // no cold disk figure in these small probes: no disk ceiling rather than a made-up one
    expect(r.rows.find((x) => x.figure === "decode_streamed_tok_s")!.ceilings!.disk).toBeNull();
  }
  // the per-layer table and the extrapolation to the model's full depth
  expect(r.layerTables.length).toBe(1);
  expect(r.layerTables[0]).toContain("layer 3");
  expect(r.layerTables[0]).toContain("full attention");
  expect(r.layerTables[0]).toMatch(/the full model \(4 layers\), extrapolated: [\d.]+ tok\/s/);
  // the TTFT of the long prompt end to end
  expect(r.rows.some((x) => x.figure === "ttft_ms:300tok:warm")).toBe(true);
  // the compute ceiling (threads x vpdpbusd peak) where the CPU has the integer path
  const pp = r.rows.find((x) => x.figure === "pp16_tok_s")!;
  expect(pp.stats.median).toBeGreaterThan(0);
  if (readFileSync("/proc/cpuinfo", "utf8").includes("avx512_vnni")) expect(pp.ceilings!.compute).toBeGreaterThan(0);
  const decode = r.rows.find((x) => x.figure === "decode_tok_s")!;
  expect(decode.ceilings!.memory).toBeGreaterThan(0);
  // the memory ceiling measured beside the decode, not only at the start of the set
  expect(r.memoryNotes).toHaveLength(1);
  expect(r.memoryNotes[0]).toMatch(/^tiny-4l: memory read [\d.]+ GB\/s on \d+ threads?, measured beside its decode \(at the start of the set: [\d.]+\)$/);
  expect(decode.ceilings!.kernel).toBeGreaterThan(0);
  expect(r.rows.some((x) => x.figure === "decode_tok_s:long:warm")).toBe(true);
  const lines = r.table.split("\n");
  expect(lines[0]).toMatch(/^model\s+target\s+figure\s+median\s+spread\s+n\s+of mem ceiling\s+of disk ceiling\s+of kernel ceiling(\s+of compute ceiling)?$/);
  expect(lines.find((l) => l.includes("fullbench") && l.includes("decode tok/s"))).toContain("p10–p90");
  expect(lines.find((l) => l.includes("fullbench") && l.includes("decode tok/s"))).toMatch(/\d+% of [\d.]+\s+\d+% of [\d.]+$/);
  expect(r.e2eTables.length).toBe(1);
  expect(r.agentTables.length).toBe(1);
  expect(lines.some((l) => l.includes("agent"))).toBe(false); // the agent figures have their own table
  expect(loadHistory(historyPath(config)).length).toBe(before + r.records.length);
  // the model is kept: artifacts, tokenizer and stamp, no checkpoint left behind; a second prepare reuses it
  expect(readdirSync(join(modelsDir, "tiny-4l")).sort()).toEqual(["artifacts", "bench-model.json", "tokenizer"]);
  expect(existsSync(join(modelsDir, "tiny-4l", "tokenizer", "tokenizer.json"))).toBe(true);
  expect((await prepareBenchModel(shape, modelsDir)).reused).toBe(true);
  expect(JSON.parse(readFileSync(join(modelsDir, "tiny-4l", "bench-model.json"), "utf8"))).toMatchObject({ preset: "tiny", layers: 4, seed: 0 });
}, 300_000);

test("agent on the fixture model: turn 2 resends turn 1 with a tool call and its result, and reuses turn 1's prefix", async () => {
  const model = join(t.dir, "fixture");
  const artifacts = join(t.dir, "fixture-artifacts");
  if (!existsSync(join(artifacts, "model_weights.json"))) {
    writeFixtureCheckpoint(model);
    await prepareFixtureArtifacts(model, artifacts);
  }
  const r = await runAgentTarget(config, { artifactsDir: artifacts, tokenizerDir: model, model: "tiny-fixture", sizes: [2048, 3072], runs: 2, history: false });
  expect(r.cases.map((c) => [c.size, c.turn1TtftMs.n, c.turn2TtftMs.n, c.ratio.n])).toEqual([[2048, 2, 2, 2], [3072, 2, 2, 2]]);
  for (const c of r.cases) {
    // sized from the tokenizer: within a tenth of the asked size
    expect(Math.abs(c.turn1PromptTokens - c.size)).toBeLessThan(c.size / 10);
    // all of turn 1's prompt but its generation prompt is reused (3 tokens, 7 with thinking off: the empty
    // think block is not in the history), or a few tokens more when turn 1's reply re-renders as it was
    // generated; turn 2 adds the call and the tool's result. Each run against its own turn 1: the runs'
    // prompts differ by up to ~15 tokens (other filler words), which made a bound against the first run's prompt flaky.
    expect(c.turn1NotReused.n).toBe(2);
    expect(c.turn1NotReused.max).toBeLessThanOrEqual(7);
    expect(c.turn2PromptTokens).toBeGreaterThan(c.turn2CachedTokens.max);
  }
  expect(r.table.split("\n")[0]).toMatch(/^conversation\s+turn 1 tokens\s+turn 1 TTFT ms\s+turn 2 tokens\s+cached\s+turn 2 TTFT ms\s+turn 2 \/ turn 1/);
  expect(r.records.map((x) => x.figure)).toEqual(["turn1_ttft_ms:2048", "turn2_ttft_ms:2048", "turn2_over_turn1:2048", "turn1_ttft_ms:3072", "turn2_ttft_ms:3072", "turn2_over_turn1:3072"]);
}, 180_000);

test("`benchmark agent --sizes` takes token counts only", async () => {
  const r = await runCli(["agent", "--sizes", "8k"], { env: t.env, script: join(repoRoot, "scripts", "benchmark.ts") });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("--sizes must be a comma-separated list of token counts");
  expect(r.stderr).not.toContain(" at ");
});

test("`benchmark standard` names an unknown bench model as a user error", async () => {
  const r = await runCli(["standard", "--shape", "nope"], { env: t.env, script: join(repoRoot, "scripts", "benchmark.ts") });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain('unknown bench model "nope"');
  expect(r.stderr).not.toContain(" at ");
});
