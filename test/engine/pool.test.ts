// The compute thread pool under stress (native/tests/test-pool.c): thousands of back-to-back jobs of random chunk counts
// on 2-8 threads, each chunk run exactly once. A pool that loses count of a job never returns: the process is given a
// generous time and killed after it, which fails the test as a hang (a hang guard, not a speed limit).
import { beforeAll, expect, test } from "bun:test";
import { join } from "pathe";
import { buildEngine, HANG_MS, NATIVE_DIR, runWithHangGuard } from "./_fixture.ts";

beforeAll(() => buildEngine());

test("100,000 back-to-back jobs of 1-16 chunks on 2, 3, 4 and 8 threads: every chunk runs exactly once, no hang", async () => {
  const r = await runWithHangGuard([join(NATIVE_DIR, "build", "test-pool"), "--jobs", "100000", "--threads", "2,3,4,8"]);
  expect({ hung: r.hung, failures: r.out.split("\n").filter((l) => l.startsWith("FAIL")) }).toEqual({ hung: false, failures: [] });
  expect(r.out).toMatch(/pool: 8 threads, 100000 jobs: ok\npool: ok/);
  expect(r.code).toBe(0);
}, HANG_MS + 20_000);
