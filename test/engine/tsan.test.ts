// ThreadSanitizer (`make engine-tsan`): the pool stress test and a protocol session of the engine (2 and 3 compute
// threads, the pread threads, cancel) must run without a single race report.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "pathe";
import { startEngine } from "../../lib/engine/client.ts";
import type { GenerateEvent, GenerateRequest } from "../../lib/engine/types.ts";
import { buildEngine, greedy, makeFixtureArtifacts, makeTempDir, NATIVE_DIR, prompt, removeDir, runWithHangGuard } from "./_fixture.ts";

const TSAN_DIR = join(NATIVE_DIR, "build", "tsan");
const TSAN_ENV = { TSAN_OPTIONS: "halt_on_error=1:exitcode=66:second_deadlock_stack=1" };
const FINDING = /WARNING: ThreadSanitizer|ERROR: ThreadSanitizer|FATAL: ThreadSanitizer/;

/** Does this compiler build and run a program with -fsanitize=thread? */
function compilerHasTsan(): boolean {
  const dir = makeTempDir("flashchat-tsan-probe-");
  try {
    writeFileSync(join(dir, "p.c"), "#include <pthread.h>\nstatic void * f(void * p) { return p; }\nint main(void) { pthread_t t; pthread_create(&t, 0, f, 0); return pthread_join(t, 0); }\n");
    const r = Bun.spawnSync([process.env.CC || "cc", "-fsanitize=thread", "-pthread", join(dir, "p.c"), "-o", join(dir, "p")]);
    return r.exitCode === 0 && Bun.spawnSync([join(dir, "p")]).exitCode === 0;
  } finally {
    removeDir(dir);
  }
}

const hasTsan = compilerHasTsan();
if (!hasTsan) console.warn("tsan.test.ts skipped: the C compiler cannot build and run a program with -fsanitize=thread");

describe.skipIf(!hasTsan)("under ThreadSanitizer", () => {
  let artifacts = "";
  beforeAll(async () => {
    await buildEngine("tsan");
    artifacts = await makeFixtureArtifacts();
  }, 300_000);
  afterAll(() => removeDir(artifacts));

  test("the pool stress test (5,000 jobs on 2, 3, 4 and 8 threads) has no race", async () => {
    const r = await runWithHangGuard([join(TSAN_DIR, "test-pool"), "--jobs", "5000", "--threads", "2,3,4,8"], TSAN_ENV);
    expect(r.out).not.toMatch(FINDING);
    expect(r.hung).toBe(false);
    expect(r.out).toContain("pool: ok");
    expect(r.code).toBe(0);
  }, 200_000);

  for (const threads of [2, 3]) {
    test(`a protocol session on ${threads} compute threads (logits, greedy, sampling, cancel) has no race`, async () => {
      const logs: string[] = [];
      const saved = process.env.TSAN_OPTIONS;
      process.env.TSAN_OPTIONS = TSAN_ENV.TSAN_OPTIONS;
      const engine = await startEngine({ binary: join(TSAN_DIR, "flashchat-engine"), artifactsDir: artifacts, threads, context: 128, onLog: (l) => logs.push(l) });
      if (saved === undefined) delete process.env.TSAN_OPTIONS;
      else process.env.TSAN_OPTIONS = saved;
      const collect = async (req: GenerateRequest, signal?: AbortSignal) => {
        const evs: GenerateEvent[] = [];
        for await (const ev of engine.generate(req, signal)) evs.push(ev);
        return evs.flatMap((e) => (e.type === "token" ? [e.token] : []));
      };
      try {
        await engine.logits(prompt());
        await engine.reset();
        expect(await collect({ tokens: prompt(), max_tokens: 8, stop_tokens: [] })).toEqual(greedy().generated_ids.slice(0, 8));
        expect(await collect({ tokens: [1, 2, 3], max_tokens: 6, stop_tokens: [], sampling: { temperature: 0.8, top_k: 20, seed: 3 } })).toHaveLength(6);
        const ac = new AbortController();
        let n = 0;
        for await (const ev of engine.generate({ tokens: [4, 5], max_tokens: 60, stop_tokens: [] }, ac.signal)) {
          if (ev.type === "token" && ++n === 2) ac.abort();
        }
      } finally {
        await engine.close();
      }
      expect(logs.join("\n")).not.toMatch(FINDING);
      expect(await engine.exited).toBe(0);
    }, 300_000);
  }
});
