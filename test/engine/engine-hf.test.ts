// The fixture check from the hf-bf16 folder: our extraction quantizes it to 4 bits (routers 8), and the engine
// must land on the same logits and the same greedy continuation as from the MLX folder.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type Engine, startEngine } from "../../lib/engine/client.ts";
import { argmaxRow, buildEngine, expectedLogits, greedy, makeFixtureArtifacts, PREFILL_LOGIT_TOL, prompt, removeDir, rowMaxDiff } from "./_fixture.ts";

let artifacts = "";
let engine: Engine;

beforeAll(async () => {
  await buildEngine();
  artifacts = await makeFixtureArtifacts("hf-bf16");
  engine = await startEngine({ artifactsDir: artifacts, threads: 2, context: 64 });
});

afterAll(async () => {
  await engine?.close();
  removeDir(artifacts);
});

test("logits from the bf16 checkpoint match expected/logits.f32 within PREFILL_LOGIT_TOL at every position, argmax unchanged", async () => {
  const got = await engine.logits(prompt());
  const want = expectedLogits();
  expect(Math.max(...rowMaxDiff(got, want, 32))).toBeLessThan(PREFILL_LOGIT_TOL);
  for (let r = 0; r < 32; r++) expect(argmaxRow(got, r)).toBe(argmaxRow(want, r));
});

test("greedy generation from the bf16 checkpoint reproduces expected/greedy.json exactly", async () => {
  const tokens: number[] = [];
  for await (const ev of engine.generate({ tokens: prompt(), max_tokens: 16, stop_tokens: [] })) if (ev.type === "token") tokens.push(ev.token);
  expect(tokens).toEqual(greedy().generated_ids);
});
