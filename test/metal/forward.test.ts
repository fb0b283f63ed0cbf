// The whole forward pass on the emulated Metal device (native/src/metal/metal-forward.c over the emulator):
// the fixture's logits at every prompt position (prompt in batches of 13: the prefill path) and its greedy
// tokens (decode), from both checkpoint formats, beside the CPU engine (test-metal --model compares each
// position with it too).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "pathe";
import { repackExperts } from "../../lib/model/repack.ts";
import {
  buildEngine, expectedLogits, FIXTURE, greedy, makeFixtureArtifacts, makeTempDir, NATIVE_DIR, readF32, removeDir, rowMaxDiff,
} from "../engine/_fixture.ts";

const dirs: string[] = [];
beforeAll(() => buildEngine());
afterAll(() => dirs.forEach(removeDir));

async function runForward(source: "mlx" | "hf-bf16", extra: string[] = [], twoBit = false) {
  const artifacts = await makeFixtureArtifacts(source);
  if (twoBit) {
    await repackExperts({ checkpointDir: FIXTURE, outDir: artifacts, bits: 2 });
    extra = [...extra, "--experts", join(artifacts, "packed_experts_2bit")];
  }
  const tmp = makeTempDir();
  dirs.push(artifacts, tmp);
  const dump = join(tmp, "logits.f32");
  const argv = [join(NATIVE_DIR, "build", "test-metal"), "--model", artifacts, "--dump", dump, ...extra];
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const generated = (out.match(/^generated:(.*)$/m)?.[1] ?? "").trim().split(/\s+/).map(Number);
  return { out, err, code, logits: readF32(dump), generated };
}

for (const source of ["mlx", "hf-bf16"] as const) {
  test(`the emulated Metal forward pass reproduces the fixture's logits and greedy tokens (${source})`, async () => {
    const r = await runForward(source);
    expect(r.err).toBe("");
    expect(r.out).toContain("forward: ok");
    expect(r.code).toBe(0);
    expect(Math.max(...rowMaxDiff(r.logits, expectedLogits(), 32))).toBeLessThan(1e-3);
    expect(r.generated).toEqual(greedy().generated_ids.slice(0, r.generated.length));
    expect(r.generated.length).toBe(9);
  });
}

test("with an f16 KV cache, and a batch's experts read in waves of 2 slots, the tokens are the same and the logits within 5e-3", async () => {
  const r = await runForward("mlx", ["--kv-f16", "--slots", "2", "--chunk", "7"]);
  expect(r.out).toContain("forward: ok");
  expect(r.code).toBe(0);
  expect(Math.max(...rowMaxDiff(r.logits, expectedLogits(), 32))).toBeLessThan(5e-3);
  expect(r.generated).toEqual(greedy().generated_ids.slice(0, r.generated.length));
});

test("with 2-bit experts the device agrees with the CPU engine at every position, greedy tokens included", async () => {
  const r = await runForward("mlx", [], true);
  expect(r.out).toMatch(/max \|logit diff\| vs the CPU engine [0-9.e-]+, 0 argmax mismatches/);
  expect(r.out).toContain("forward: ok");
  expect(r.code).toBe(0);
  expect(r.generated.length).toBe(9);
});
