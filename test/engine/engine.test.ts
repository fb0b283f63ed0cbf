// The engine on the fixture model: logits of every position against the reference, greedy decoding, incremental decode.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "pathe";
import { type Engine, startEngine } from "../../lib/engine/client.ts";
import { writeEngineLogits } from "../../lib/bench/logits.ts";
import {
  argmaxRow,
  buildEngine,
  ENGINE,
  expectedFullSequenceLogits,
  expectedLogits,
  greedy,
  makeFixtureArtifacts,
  PREFILL_LOGIT_TOL,
  prompt,
  readF32,
  removeDir,
  rowMaxDiff,
  VOCAB,
} from "./_fixture.ts";

let artifacts = "";
let engine: Engine;

beforeAll(async () => {
  await buildEngine();
  artifacts = await makeFixtureArtifacts();
  engine = await startEngine({ artifactsDir: artifacts, threads: 2, context: 64 });
});

afterAll(async () => {
  await engine?.close();
  removeDir(artifacts);
});

test("benchmark logits (batch mode) matches expected/logits.f32 within PREFILL_LOGIT_TOL at every position, argmax unchanged", async () => {
  const out = join(artifacts, "logits.f32");
  await writeEngineLogits({ artifactsDir: artifacts, tokens: prompt(), outPath: out, threads: "1" });
  const got = readF32(out);
  const want = expectedLogits();
  expect(got.length).toBe(want.length);
  const diffs = rowMaxDiff(got, want, 32);
  expect(Math.max(...diffs)).toBeLessThan(PREFILL_LOGIT_TOL);
  for (let r = 0; r < 32; r++) expect(argmaxRow(got, r)).toBe(argmaxRow(want, r));
});

// the kernel levels apart: the float AVX-512 kernels (level 2) and the integer path (level 3, AVX-512 VNNI)
const cpuFlags = (() => {
  try {
    return readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return "";
  }
})();
for (const [level, flag, tol] of [[2, "avx512bw", 1e-3], [3, "avx512_vnni", PREFILL_LOGIT_TOL]] as const) {
  test.skipIf(!cpuFlags.includes(flag))(`kernel level ${level} (cpu:${level}): batched logits within ${tol} of the reference, argmax unchanged`, async () => {
    const out = join(artifacts, `logits-cpu${level}.f32`);
    await using proc = Bun.spawn([ENGINE, "logits", "--artifacts", artifacts, "--backend", `cpu:${level}`, "--threads", "2", "--tokens", prompt().join(","), "--out", out], {
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(await proc.exited).toBe(0);
    const got = readF32(out);
    expect(Math.max(...rowMaxDiff(got, expectedLogits(), 32))).toBeLessThan(tol);
    for (let r = 0; r < 32; r++) expect(argmaxRow(got, r)).toBe(argmaxRow(expectedLogits(), r));
  });
}

// A prompt long enough that full attention runs in units of a K/V head's group with 4-query tiles over whole K/V
// blocks (a 32-token prompt never fills one): the same tokens one at a time take the one-head path.
test("a 300-token prompt in one chunk matches the same tokens one at a time within 1e-3 (float kernels), argmax unchanged", async () => {
  const tokens = Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) % VOCAB);
  const logits = async (batch: number) => {
    const out = join(artifacts, `long-${batch}.f32`);
    await using proc = Bun.spawn([ENGINE, "logits", "--artifacts", artifacts, "--backend", "cpu:2", "--threads", "2", "--batch", String(batch), "--tokens", tokens.join(","), "--out", out], {
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(await proc.exited).toBe(0);
    return readF32(out);
  };
  const chunk = await logits(512);
  const single = await logits(1);
  expect(chunk.length).toBe(300 * VOCAB);
  expect(Math.max(...rowMaxDiff(chunk, single, 300))).toBeLessThan(1e-3);
  for (let r = 0; r < 300; r++) expect(argmaxRow(chunk, r)).toBe(argmaxRow(single, r));
});

test("the logits op over the protocol gives the same numbers", async () => {
  const got = await engine.logits(prompt());
  expect(got.length).toBe(32 * VOCAB);
  expect(Math.max(...rowMaxDiff(got, expectedLogits(), 32))).toBeLessThan(PREFILL_LOGIT_TOL);
});

test("greedy generation reproduces expected/greedy.json exactly", async () => {
  const tokens: number[] = [];
  let done: Record<string, unknown> | undefined;
  for await (const ev of engine.generate({ tokens: prompt(), max_tokens: 16, stop_tokens: [] })) {
    if (ev.type === "token") tokens.push(ev.token);
    if (ev.type === "done") done = ev;
  }
  expect(tokens).toEqual(greedy().generated_ids);
  expect(done).toMatchObject({ reason: "length", prompt_tokens: 32, completion_tokens: 16 });
  expect(done!.expert_bytes as number).toBeGreaterThan(0);
});

/** log-softmax of row r at index i. */
function logSoftmaxAt(a: Float32Array, r: number, i: number): number {
  let m = -Infinity;
  for (let j = 0; j < VOCAB; j++) m = Math.max(m, a[r * VOCAB + j]!);
  let sum = 0;
  for (let j = 0; j < VOCAB; j++) sum += Math.exp(a[r * VOCAB + j]! - m);
  return a[r * VOCAB + i]! - m - Math.log(sum);
}

test("batched evaluation of prompt + greedy tokens matches logits_full_sequence at every position", async () => {
  const seq = greedy().full_sequence;
  const got = await engine.logits(seq);
  expect(Math.max(...rowMaxDiff(got, expectedFullSequenceLogits(), seq.length))).toBeLessThan(PREFILL_LOGIT_TOL);
});

test("token-by-token decoding from position 0 matches logits_full_sequence at every position", async () => {
  // force_tokens walks the sequence one token per step; each step's logprob comes from that step's logits
  const seq = greedy().full_sequence;
  const want = expectedFullSequenceLogits();
  const logprobs: number[] = [];
  const tokens: number[] = [];
  const req = { tokens: seq.slice(0, 1), max_tokens: seq.length - 1, force_tokens: seq.slice(1), stop_tokens: [], logprobs: true };
  for await (const ev of engine.generate(req)) {
    if (ev.type === "token") {
      tokens.push(ev.token);
      logprobs.push((ev as unknown as { logprob: number }).logprob);
    }
  }
  expect(tokens).toEqual(seq.slice(1));
  let worst = 0;
  for (let i = 0; i < logprobs.length; i++) worst = Math.max(worst, Math.abs(logprobs[i]! - logSoftmaxAt(want, i, seq[i + 1]!)));
  expect(worst).toBeLessThan(2e-3);
});

// decode on int8 activations (x86 level 3, 4-bit weights: dot_xv) against the float decode of level 2, token by token
for (const [level, flag] of [[2, "avx512bw"], [3, "avx512_vnni"]] as const) {
  test.skipIf(!cpuFlags.includes(flag))(`kernel level ${level} (cpu:${level}): token-by-token decoding within 2e-3 of logits_full_sequence`, async () => {
    const seq = greedy().full_sequence;
    const want = expectedFullSequenceLogits();
    const e = await startEngine({ artifactsDir: artifacts, threads: 2, context: 64, backend: `cpu:${level}` });
    try {
      const logprobs: number[] = [];
      for await (const ev of e.generate({ tokens: seq.slice(0, 1), max_tokens: seq.length - 1, force_tokens: seq.slice(1), stop_tokens: [], logprobs: true })) {
        if (ev.type === "token") logprobs.push((ev as unknown as { logprob: number }).logprob);
      }
      expect(logprobs.length).toBe(seq.length - 1);
      let worst = 0;
      for (let i = 0; i < logprobs.length; i++) worst = Math.max(worst, Math.abs(logprobs[i]! - logSoftmaxAt(want, i, seq[i + 1]!)));
      expect(worst).toBeLessThan(2e-3);
    } finally {
      await e.close();
    }
  });
}

for (const flags of [["--expert-mmap"], ["--expert-io", "pread"], ["--expert-io", "mmap"], ["--expert-io", "populate"]]) {
  test(`${flags.join(" ")} gives the same logits, and says how it read the experts`, async () => {
    const out = join(artifacts, `logits${flags.join("")}.f32`);
    await using proc = Bun.spawn(
      [ENGINE, "logits", "--artifacts", artifacts, ...flags, "--threads", "2", "--tokens", prompt().join(","), "--out", out],
      { stdout: "pipe", stderr: "pipe" },
    );
    expect(await proc.exited).toBe(0);
    const mode = flags[0] === "--expert-mmap" ? "mmap" : flags[1]!;
    expect(await new Response(proc.stderr).text()).toContain(`experts by ${mode},`);
    expect(Math.max(...rowMaxDiff(readF32(out), expectedLogits(), 32))).toBeLessThan(PREFILL_LOGIT_TOL);
  });
}

test("--expert-io with an unknown mode is a usage error (exit 2)", async () => {
  await using proc = Bun.spawn([ENGINE, "--artifacts", artifacts, "--expert-io", "fast"], { stdout: "pipe", stderr: "pipe" });
  expect(await proc.exited).toBe(2);
  expect(await new Response(proc.stderr).text()).toContain("--expert-io: bad value fast");
});

test("by default (auto) a model whose experts fit in memory has them loaded up front; the client can ask for pread", async () => {
  // the fixture's experts are a few hundred kB: far below half of any machine's available memory
  expect(engine.ready.expert_io).toBe("populate");
  const streamed = await startEngine({ artifactsDir: artifacts, threads: 1, context: 16, expertIo: "pread" });
  try {
    expect(streamed.ready.expert_io).toBe("pread");
  } finally {
    await streamed.close();
  }
});
