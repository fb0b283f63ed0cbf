// The engine tests once more under AddressSanitizer + UndefinedBehaviorSanitizer (`make engine-asan`): the native test
// binaries (the pool stress test too), the fixture logits, greedy decoding, errors, cancel, snapshots. Any finding aborts the process.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "pathe";
import { type Engine, startEngine } from "../../lib/engine/client.ts";
import type { GenerateEvent, GenerateRequest } from "../../lib/engine/types.ts";
import { PREFILL_LOGIT_TOL, buildEngine, expectedLogits, greedy, makeFixtureArtifacts, makeTempDir, NATIVE_DIR, prompt, removeDir, rowMaxDiff } from "./_fixture.ts";

const ASAN_DIR = join(NATIVE_DIR, "build", "asan");
const SANITIZER_ENV = {
  ASAN_OPTIONS: "detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=66",
  UBSAN_OPTIONS: "halt_on_error=1:print_stacktrace=1:exitcode=67",
};
const FINDING = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;

/** Does this compiler link a program with -fsanitize=address,undefined? */
function compilerHasSanitizers(): boolean {
  const dir = makeTempDir("flashchat-asan-probe-");
  try {
    writeFileSync(join(dir, "p.c"), "int main(void) { return 0; }\n");
    const r = Bun.spawnSync([process.env.CC || "cc", "-fsanitize=address,undefined", join(dir, "p.c"), "-o", join(dir, "p")]);
    return r.exitCode === 0 && Bun.spawnSync([join(dir, "p")]).exitCode === 0;
  } finally {
    removeDir(dir);
  }
}

const hasSanitizers = compilerHasSanitizers();
if (!hasSanitizers) console.warn("asan.test.ts skipped: the C compiler cannot build with -fsanitize=address,undefined");

describe.skipIf(!hasSanitizers)("under ASan + UBSan", () => {
  let artifacts = "";
  let tmp = "";
  let engine: Engine;
  const logs: string[] = [];
  const savedEnv: Record<string, string | undefined> = {};

  beforeAll(async () => {
    await buildEngine("asan");
    artifacts = await makeFixtureArtifacts();
    tmp = makeTempDir();
    for (const [k, v] of Object.entries(SANITIZER_ENV)) {
      savedEnv[k] = process.env[k];
      process.env[k] = v;
    }
    engine = await startEngine({ binary: join(ASAN_DIR, "flashchat-engine"), artifactsDir: artifacts, threads: 2, context: 64, onLog: (l) => logs.push(l) });
  }, 300_000);

  afterAll(async () => {
    await engine?.close();
    for (const [k, v] of Object.entries(savedEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    removeDir(artifacts);
    removeDir(tmp);
  });

  for (const name of ["test-kernels", "test-json", "test-pool"]) {
    test(`${name} is clean`, async () => {
      const proc = Bun.spawn([join(ASAN_DIR, name)], { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...SANITIZER_ENV } });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      expect(err).not.toMatch(FINDING);
      expect(out).not.toContain("FAIL");
      expect(code).toBe(0);
    }, 120_000);
  }

  const collect = async (req: GenerateRequest, signal?: AbortSignal) => {
    const evs: GenerateEvent[] = [];
    for await (const ev of engine.generate(req, signal)) evs.push(ev);
    return evs;
  };
  const tokensOf = (evs: GenerateEvent[]) => evs.flatMap((e) => (e.type === "token" ? [e.token] : []));

  test("a protocol session: logits, greedy, sampling, snapshots, errors, cancel, save/load; exit 0 and no findings", async () => {
    const logits = await engine.logits(prompt());
    expect(Math.max(...rowMaxDiff(logits, expectedLogits(), 32))).toBeLessThan(PREFILL_LOGIT_TOL);
    const p = prompt();
    await engine.reset(); // else the logits op's state is reused whole and no snapshot at 12 is taken
    expect(tokensOf(await collect({ tokens: p, max_tokens: 16, stop_tokens: [], snapshot_at: [12] }))).toEqual(greedy().generated_ids);
    const sampled = await collect({
      tokens: [...p.slice(0, 12), 5, 6],
      max_tokens: 4,
      sampling: { temperature: 0.9, top_k: 20, top_p: 0.9, min_p: 0.02, repetition_penalty: 1.1, presence_penalty: 0.3, frequency_penalty: 0.1, seed: 5 },
    });
    expect(sampled.find((e) => e.type === "prompt")).toMatchObject({ cached_tokens: 12 });
    const withLogprobs = await collect({ tokens: [7, 8, 9], max_tokens: 3, stop_tokens: [], top_logprobs: 20, logit_bias: { "5": 2, "511": -100 } });
    expect(withLogprobs.filter((e) => e.type === "token").every((e) => (e as { top_logprobs?: unknown[] }).top_logprobs?.length === 20)).toBe(true);
    await expect(collect({ tokens: [1], max_tokens: 1, sampling: { seed: 2 ** 64 } })).rejects.toMatchObject({ code: "bad_request" });
    await expect(engine.logits([1, 99999])).rejects.toMatchObject({ code: "bad_token" });
    await expect(collect({ tokens: Array.from({ length: 65 }, () => 1), max_tokens: 1 })).rejects.toMatchObject({ code: "context_overflow" });
    const ac = new AbortController();
    let n = 0;
    for await (const ev of engine.generate({ tokens: [3, 4], max_tokens: 60, stop_tokens: [] }, ac.signal)) {
      if (ev.type === "token" && ++n === 2) ac.abort();
    }
    const snaps = join(tmp, "snaps.bin");
    await engine.saveSnapshots(snaps);
    await engine.loadSnapshots(snaps);
    await engine.reset();
    expect(tokensOf(await collect({ tokens: p, max_tokens: 3, stop_tokens: [] }))).toEqual(greedy().generated_ids.slice(0, 3));
    const stats = await engine.stats();
    expect(stats.requests as number).toBeGreaterThan(3);
    await engine.close();
    expect(await engine.exited).toBe(0);
    expect(logs.join("\n")).not.toMatch(FINDING);
  }, 300_000);
});
