import { afterAll, beforeAll, expect, test } from "bun:test";
import type { RunningServer } from "../../lib/server/app.ts";
import { parseIntFlag } from "../../lib/cli.ts";
import { createPrompt, e2eRecords, startBenchServer, renderE2eTable, resolveTokenizerDir, runE2e, timeChatStream } from "../../lib/bench/e2e.ts";
import { UserError } from "../../lib/errors.ts";
import { createFakeEngineFactory } from "../server/_fake-engine.ts";
import { createTempDir, createTinyModelDir, startTestServer } from "../server/_server-fixture.ts";

// The measuring side of the e2e target against the real HTTP server, with the in-process stand-in engine.
const tmp = createTempDir("flashchat-e2e-");
let server: RunningServer;
beforeAll(async () => {
  server = await startTestServer(tmp.dir, { startEngine: createFakeEngineFactory({ tokenDelayMs: 2 }).start });
});
afterAll(async () => {
  await server.stop(0);
  tmp[Symbol.dispose]();
});

test("one streamed request: prompt and completion tokens from usage, TTFT before the decode interval", async () => {
  const t = await timeChatStream(server.url, createPrompt(20, 1), 8);
  expect(t.promptTokens).toBeGreaterThan(20);
  expect(t.completionTokens).toBeGreaterThanOrEqual(1);
  expect(t.completionTokens).toBeLessThanOrEqual(8);
  expect(t.ttftMs).toBeGreaterThan(0);
  expect(t.decodeMs).toBeGreaterThanOrEqual(0);
  expect(t.totalMs).toBeCloseTo(t.ttftMs + t.decodeMs, 5);
});

test("prompts differ from their first word, so runs do not reuse each other's prefix", () => {
  const a = createPrompt(50, 1);
  const b = createPrompt(50, 2);
  expect(a.split(" ").length).toBe(52);
  expect(a.slice(0, 6)).not.toBe(b.slice(0, 6));
});

test("runE2e: short and long prompt, warm cache, each with medians over the measured runs", async () => {
  const seen: string[] = [];
  const r = await runE2e(server.url, { shortWords: 5, longWords: 60, decodeTokens: 6, warmup: 1, runs: 2, cold: false, onCase: (l) => seen.push(l) });
  expect(seen).toEqual(["short prompt, warm cache", "long prompt, warm cache"]);
  expect(r.coldNote).toBe("cold cache not requested");
  expect(r.cases.map((c) => [c.prompt, c.cache, c.ttftMs.n, c.prefillTokS.n])).toEqual([
    ["short", "warm", 2, 2],
    ["long", "warm", 2, 2],
  ]);
  expect(r.cases[1]!.promptTokens.median).toBeGreaterThan(r.cases[0]!.promptTokens.median + 50);
  for (const c of r.cases) {
    expect(c.ttftMs.min).toBeLessThanOrEqual(c.ttftMs.median);
    if (c.decodeTokS) expect(c.decodeTokS.min).toBeGreaterThan(0);
  }
  const recs = e2eRecords(r, { date: "2026-11-24T00:00:00Z", commit: "abc", machine: { cpu: "x", cores: 2, ramGiB: 1, os: "y" }, model: "tiny", quantization: "4bit" }, { memory: 100, disk: 10, kernel: null });
  expect(recs.filter((x) => x.figure.startsWith("ttft_ms:")).map((x) => x.figure)).toEqual(["ttft_ms:short:warm", "ttft_ms:long:warm"]);
  for (const x of recs) expect(x.target).toBe("e2e");
  for (const x of recs.filter((x) => x.figure.startsWith("decode"))) expect(x.ceilings).toEqual({ memory: 100, kernel: null });
  const table = renderE2eTable(r, { memory: 100, disk: 10, kernel: null }).split("\n");
  expect(table[0]).toMatch(/^prompt\s+cache\s+tokens\s+TTFT ms\s+prefill tok\/s\s+decode tok\/s/);
  expect(table.length).toBe(4);
});

test("runE2e: cold runs evict the model's files before every request; the long-prompt TTFT case; no evict, no cold runs", async () => {
  const evicted: number[] = [];
  const r = await runE2e(server.url, {
    shortWords: 5, longWords: 30, decodeTokens: 4, warmup: 0, runs: 2, cold: true, ttftTokens: 300, ttftRuns: 2,
    evict: async () => {
      evicted.push(Date.now());
      return { ok: true, note: "2 file(s) evicted" };
    },
  });
  expect(r.cases.map((c) => `${c.prompt}/${c.cache}/${c.ttftMs.n}`)).toEqual(["short/warm/2", "long/warm/2", "300tok/warm/2", "short/cold/2", "long/cold/2"]);
  expect(evicted.length).toBe(4);
  expect(r.coldNote).toBe("2 file(s) evicted");
  // the TTFT prompt is about the tokens asked for (~1.1 per word plus the template's)
  const long = r.cases.find((c) => c.prompt === "300tok")!;
  expect(long.promptTokens.median).toBeGreaterThan(240);
  expect(long.promptTokens.median).toBeLessThan(400);
  const none = await runE2e(server.url, { shortWords: 5, longWords: 10, decodeTokens: 2, warmup: 0, runs: 2, cold: true });
  expect(none.cases.map((c) => c.cache)).toEqual(["warm", "warm"]);
  expect(none.coldNote).toContain("no way to evict");
  const refused = await runE2e(server.url, { shortWords: 5, longWords: 10, decodeTokens: 2, warmup: 0, runs: 2, cold: true, evict: async () => ({ ok: false, note: "cannot" }) });
  expect([refused.cases.length, refused.coldNote]).toEqual([2, "cannot"]);
}, 60_000);

test("flag values and tokenizer lookup fail as user errors", () => {
  expect(parseIntFlag(undefined, "--runs", 2)).toBeUndefined();
  expect(parseIntFlag("5", "--runs", 2)).toBe(5);
  expect(() => parseIntFlag("1", "--runs", 2)).toThrow('invalid --runs "1": expected a whole number, 2 or more');
  expect(() => parseIntFlag("x", "--runs", 2)).toThrow(UserError);
  expect(() => parseIntFlag("1.5", "--runs")).toThrow(UserError);
  expect(() => resolveTokenizerDir([tmp.dir, undefined])).toThrow(/no tokenizer found/);
  const dir = createTinyModelDir(`${tmp.dir}/tk`);
  expect(resolveTokenizerDir([undefined, tmp.dir, dir])).toBe(dir);
});

test("a server whose engine cannot load is a one-line user error naming why", async () => {
  const tokenizerDir = createTinyModelDir(`${tmp.dir}/tk2`);
  const err = await startBenchServer({ artifactsDir: `${tmp.dir}/no-such-artifacts`, tokenizerDir }).catch((e) => e);
  expect(err).toBeInstanceOf(UserError);
  expect(err.message).toStartWith("the server did not start for the benchmark: ");
  expect(err.message).toContain("no-such-artifacts");
}, 60_000);
