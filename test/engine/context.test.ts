// The context and the KV cache: the model's maximum by default (lowered to what fits in memory, saying so), a
// context above the model's maximum refused, a 100,000-token prompt on a model that allows it, memory that grows
// with the sequence, and the cache types (f16 default, bf16, q8, f32) against the fixture's reference logits.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "pathe";
import { EngineError, type Engine, startEngine } from "../../lib/engine/client.ts";
import { extractWeights } from "../../lib/model/extract.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { TEST_MODEL_PRESETS, writeTestModel } from "../../lib/model/test-model.ts";
import {
  argmaxRow,
  buildEngine,
  ENGINE,
  expectedFullSequenceLogits,
  greedy,
  makeFixtureArtifacts,
  makeTempDir,
  PREFILL_LOGIT_TOL,
  readF32,
  removeDir,
  rowMaxDiff,
} from "./_fixture.ts";

// the 100,000-token prompt is quadratic in attention: minutes on a loaded machine
setDefaultTimeout(600_000);

/** A tiny model whose config allows any context: one attention head of 64 (the least a 64-group quantization takes). */
const LONG_MAX = 2147483647;
const LONG_KV_BYTES_PER_TOKEN = 1 /* full layer */ * 1 /* kv head */ * 64 * 2 /* K, V */ * 2; /* f16 */

let fixture = "";
let long = "";
let tmp = "";

beforeAll(async () => {
  await buildEngine();
  fixture = await makeFixtureArtifacts();
  tmp = makeTempDir();
  const ck = join(tmp, "long-checkpoint");
  long = join(tmp, "long-artifacts");
  const dims = { ...TEST_MODEL_PRESETS.tiny!, num_attention_heads: 1, num_key_value_heads: 1, head_dim: 64, max_position_embeddings: LONG_MAX };
  await writeTestModel({ outDir: ck, dims, seed: 5 });
  await extractWeights({ checkpointDir: ck, outDir: long });
  await repackExperts({ checkpointDir: ck, outDir: long });
}, 120_000);

afterAll(() => {
  removeDir(fixture);
  removeDir(tmp);
});

async function runEngine(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  await using proc = Bun.spawn([ENGINE, ...args], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  proc.stdin.end(); // EOF: the engine exits right after `ready`
  const [stdout, stderr, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
  return { code, stderr, stdout };
}

describe("the context", () => {
  test("defaults to the model's maximum; ready reports context, max_context, kv_type and kv_bytes_per_token", async () => {
    const e = await startEngine({ artifactsDir: fixture, threads: 1 });
    try {
      // the fixture: 4096 positions, one full-attention layer of 2 kv heads of 64
      expect(e.ready).toMatchObject({ context: 4096, max_context: 4096, kv_type: "f16", kv_bytes_per_token: 1 * 2 * 64 * 2 * 2 });
    } finally {
      await e.close();
    }
    const q8 = await startEngine({ artifactsDir: fixture, threads: 1, kvType: "q8" });
    try {
      expect(q8.ready).toMatchObject({ kv_type: "q8", kv_bytes_per_token: 1 * 2 * (64 + 4) * 2 });
    } finally {
      await q8.close();
    }
  });

  test("a --context above the model's maximum is refused with exit 2, naming both numbers", async () => {
    const r = await runEngine(["--artifacts", fixture, "--threads", "1", "--context", "5000"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--context 5000 is larger than the model's maximum context of 4096 tokens");
  });

  test("a default context too big for memory is lowered to a power of two that fits, saying so", async () => {
    const lines: string[] = [];
    const e = await startEngine({ artifactsDir: long, threads: 1, onLog: (l) => lines.push(l) });
    try {
      const ctx = e.ready.context;
      expect(e.ready.max_context).toBe(LONG_MAX);
      expect(ctx).toBeLessThan(LONG_MAX);
      expect(ctx).toBeGreaterThanOrEqual(4096);
      expect(Math.log2(ctx) % 1).toBe(0);
      const note = lines.find((l) => l.includes("GB of KV cache"));
      expect(note).toMatch(new RegExp(`context ${LONG_MAX} needs [0-9.]+ GB of KV cache \\(f16\\); [0-9.]+ GB free: using ${ctx}$`));
    } finally {
      await e.close();
    }
  });

  test("an asked context too big for memory is an error naming the setting", async () => {
    const r = await runEngine(["--artifacts", long, "--threads", "1", "--context", String(LONG_MAX)]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`--context ${LONG_MAX} needs [0-9.]+ GB of KV cache \\(f16\\); [0-9.]+ GB of memory is free: lower the context \\(CONTEXT_SIZE\\)`));
    await expect(startEngine({ artifactsDir: long, threads: 1, context: LONG_MAX })).rejects.toBeInstanceOf(EngineError);
  });
});

describe("a long sequence", () => {
  let e: Engine;
  beforeAll(async () => {
    e = await startEngine({ artifactsDir: long, threads: 2, context: 131072 });
  });
  afterAll(async () => {
    await e?.close();
  });

  test("the KV cache is committed as the sequence grows, not reserved for the context up front", async () => {
    expect(e.ready.kv_bytes_per_token).toBe(LONG_KV_BYTES_PER_TOKEN);
    const before = await e.stats();
    expect(before.kv_bytes).toBe(0);
    const tokens = Array.from({ length: 1500 }, (_, i) => (i * 31) % 500);
    for await (const ev of e.generate({ tokens, max_tokens: 0, stop_tokens: [] })) void ev;
    const after = (await e.stats()) as { kv_bytes: number; n_past: number };
    expect(after.n_past).toBe(1500);
    // committed in chunks of 1024 positions: 2048 of 131072
    expect(after.kv_bytes).toBe(2048 * LONG_KV_BYTES_PER_TOKEN);
  });

  test("a 100,000-token prompt is accepted at a context above 4096; its memory use is reported", async () => {
    const n = 100_000;
    let x = 7;
    const tokens = Array.from({ length: n }, () => ((x = (x * 1103515245 + 12345) % 2147483648), x % 500));
    const before = (await e.stats()) as { rss_bytes: number };
    let done: Record<string, unknown> | undefined;
    const out: number[] = [];
    for await (const ev of e.generate({ tokens, max_tokens: 4, stop_tokens: [] })) {
      if (ev.type === "token") out.push(ev.token);
      if (ev.type === "done") done = ev;
    }
    expect(done).toMatchObject({ reason: "length", prompt_tokens: n, completion_tokens: 4 });
    const s = (await e.stats()) as { kv_bytes: number; rss_bytes: number; max_rss_bytes: number; n_past: number; context: number };
    expect(s.context).toBe(131072);
    expect(s.kv_bytes).toBe(Math.ceil((n + 4) / 1024) * 1024 * LONG_KV_BYTES_PER_TOKEN);
    expect(s.kv_bytes).toBeLessThan(131072 * LONG_KV_BYTES_PER_TOKEN);
    // the rows written are resident: memory grew by at least the K/V of the new tokens
    expect(s.rss_bytes - before.rss_bytes).toBeGreaterThan(0.9 * (n - 1500) * LONG_KV_BYTES_PER_TOKEN);
    console.log(
      `100,000-token prompt: KV cache ${(s.kv_bytes / 1e6).toFixed(1)} MB committed (${LONG_KV_BYTES_PER_TOKEN} B/token), ` +
        `rss ${(s.rss_bytes / 1e6).toFixed(1)} MB (was ${(before.rss_bytes / 1e6).toFixed(1)} MB), max rss ${(s.max_rss_bytes / 1e6).toFixed(1)} MB`,
    );
  });
});

describe("KV cache types against the fixture's reference logits", () => {
  const seq = () => greedy().full_sequence;
  async function logitsWith(kvType: string): Promise<Float32Array> {
    const out = join(fixture, `logits-${kvType}.f32`);
    const r = Bun.spawnSync([ENGINE, "logits", "--artifacts", fixture, "--threads", "1", "--kv-type", kvType, "--tokens", seq().join(","), "--out", out]);
    if (r.exitCode !== 0) throw new Error(r.stderr.toString());
    return readF32(out);
  }
  const maxDiff = (a: Float32Array, b: Float32Array) => Math.max(...rowMaxDiff(a, b, seq().length));

  // a batch: the kernels' own error (PREFILL_LOGIT_TOL on CPUs with the integer path) comes first; the cache types
  // are held to their bounds against the f32 cache's logits, and f32 to the reference
  test("f32 within PREFILL_LOGIT_TOL of the reference at every position; f16 (default) within 1e-3 of f32, bf16 within 1e-2, q8 within 5e-2", async () => {
    const want = expectedFullSequenceLogits();
    const got = Object.fromEntries(await Promise.all(["f32", "f16", "bf16", "q8"].map(async (t) => [t, await logitsWith(t)] as const)));
    const err = Object.fromEntries(Object.entries(got).map(([t, l]) => [t, t === "f32" ? maxDiff(l, want) : maxDiff(l, got.f32!)]));
    console.log(`largest |logit difference| over ${seq().length} positions (f32: to the reference, others: to f32): ${Object.entries(err).map(([t, v]) => `${t} ${v.toExponential(2)}`).join(", ")}`);
    expect(err.f32!).toBeLessThan(PREFILL_LOGIT_TOL);
    expect(err.f16!).toBeLessThan(1e-3);
    expect(err.bf16!).toBeLessThan(1e-2);
    expect(err.q8!).toBeLessThan(5e-2);
    // f16 is the closer of the 16-bit types (why it is the default); every type is lossy next to f32
    expect(err.f16!).toBeLessThan(err.bf16!);
    expect(maxDiff(got.f16!, got.f32!)).toBeGreaterThan(0);
    for (let r = 0; r < seq().length; r++) expect(argmaxRow(got.f16!, r)).toBe(argmaxRow(want, r));
  });

  test("snapshots: a file of another cache type or an older format is refused cleanly; same type round-trips", async () => {
    const dir = makeTempDir();
    try {
      const prompt = greedy().full_sequence.slice(0, 32);
      const q8 = await startEngine({ artifactsDir: fixture, threads: 1, kvType: "q8" });
      const file = join(dir, "q8.snapshots");
      let first: number[] = [];
      try {
        for await (const ev of q8.generate({ tokens: prompt, max_tokens: 4, stop_tokens: [], force_tokens: undefined })) if (ev.type === "token") first.push(ev.token);
        await q8.saveSnapshots(file);
      } finally {
        await q8.close();
      }
      const f16 = await startEngine({ artifactsDir: fixture, threads: 1 });
      try {
        await expect(f16.loadSnapshots(file)).rejects.toThrow("snapshots of a q8 KV cache; this engine's is f16");
        const old = join(dir, "old.snapshots");
        writeFileSync(old, Buffer.concat([Buffer.from("FCSNAP01"), Buffer.alloc(64)]));
        await expect(f16.loadSnapshots(old)).rejects.toThrow("snapshot format 01; this engine reads format 02 only");
      } finally {
        await f16.close();
      }
      const again = await startEngine({ artifactsDir: fixture, threads: 1, kvType: "q8" });
      try {
        await again.loadSnapshots(file);
        const tokens: number[] = [];
        let cached = 0;
        for await (const ev of again.generate({ tokens: prompt, max_tokens: 4, stop_tokens: [] })) {
          if (ev.type === "token") tokens.push(ev.token);
          if (ev.type === "prompt") cached = ev.cached_tokens;
        }
        expect(cached).toBeGreaterThan(0);
        expect(tokens).toEqual(first);
      } finally {
        await again.close();
      }
    } finally {
      removeDir(dir);
    }
  });
});
