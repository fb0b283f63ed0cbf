// Our artifacts of the fixture, run by the engine, reproduce the reference logits (when the engine is built).
import { afterAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "pathe";
import { extractWeights } from "../../lib/model/extract.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { PREFILL_LOGIT_TOL } from "../engine/_fixture.ts";
import { FIXTURE, makeTempDir, removeDir } from "./_helpers.ts";

const ENGINE = join(import.meta.dir, "../../native/build/flashchat-engine");
const tmp = makeTempDir();
afterAll(() => removeDir(tmp));

test.skipIf(!existsSync(ENGINE))("engine logits on our extracted + repacked fixture match expected/logits.f32 within PREFILL_LOGIT_TOL", async () => {
  await extractWeights({ checkpointDir: FIXTURE, outDir: tmp });
  await repackExperts({ checkpointDir: FIXTURE, outDir: tmp });
  const ids: number[] = JSON.parse(readFileSync(join(FIXTURE, "expected/prompt.json"), "utf8")).input_ids;
  const out = join(tmp, "logits.f32");
  await using proc = Bun.spawn([ENGINE, "logits", "--artifacts", tmp, "--tokens", ids.join(","), "--out", out, "--threads", "1"], { stdout: "pipe", stderr: "pipe" });
  const [stderr, code] = await Promise.all([proc.stderr.text(), proc.exited]);
  expect([code, stderr]).toEqual([0, expect.any(String)]);
  const got = new Float32Array(readFileSync(out).buffer.slice(0));
  const want = new Float32Array(readFileSync(join(FIXTURE, "expected/logits.f32")).buffer.slice(0));
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  expect(worst).toBeLessThan(PREFILL_LOGIT_TOL); // a batch: the integer path where the CPU has one
});
