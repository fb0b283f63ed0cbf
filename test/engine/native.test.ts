// The native test binaries (kernels against the scalar reference at every bit width and odd sizes; the JSON reader)
// and the engine's own verify mode on the fixture's matrices.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "pathe";
import { runEngineBench } from "../../lib/bench/engine.ts";
import { makeTempHome, runCli } from "../helpers/cli.ts";
import { buildEngine, FIXTURE, makeFixtureArtifacts, NATIVE_DIR, removeDir } from "./_fixture.ts";

let artifacts = "";
beforeAll(async () => {
  await buildEngine();
  artifacts = await makeFixtureArtifacts();
});
afterAll(() => removeDir(artifacts));

async function runBinary(name: string): Promise<{ code: number; out: string }> {
  const proc = Bun.spawn([join(NATIVE_DIR, "build", name)], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out: out + err };
}

test("every kernel level matches the scalar reference (2/4/8-bit, odd rows, 1-19 tokens, 1-3 threads, float matrices; the integer path bit for bit)", async () => {
  const { code, out } = await runBinary("test-kernels");
  expect(out).toMatch(/\d+ checks, 0 failures/);
  expect(code).toBe(0);
}, 60_000);

test("the JSON reader accepts valid documents and rejects malformed ones", async () => {
  const { code, out } = await runBinary("test-json");
  expect(out).toContain("json: ok");
  expect(code).toBe(0);
});

test("bench verify: the backend's kernels equal the reference on the model's own matrices", async () => {
  const out = await runEngineBench("verify", { artifacts, threads: "2", json: true }, true);
  const r = JSON.parse(out.trim().split("\n").at(-1)!) as { ok: boolean; results: { name: string; ok: boolean }[] };
  expect(r.ok).toBe(true);
  expect(r.results.map((x) => x.name)).toContain("expert0.gate_proj");
  expect(r.results.every((x) => x.ok)).toBe(true);
});

test("`flashchat benchmark verify` without --artifacts sets the model up first, then verifies every level on it", async () => {
  using home = makeTempHome();
  const r = await runCli(["benchmark", "verify", "--model", FIXTURE, "--yes", "--threads", "2"], { env: home.env });
  expect(r.stdout).toContain("verify expert0.gate_proj");
  expect(r.stdout).toContain("verify synthetic/generic-int8");
  expect(r.stdout).toContain("verify: all ok");
  expect(r.code).toBe(0);
}, 120_000);

test("bench run and full report time per op and GB/s with both ceilings", async () => {
  const run = JSON.parse((await runEngineBench("run", { artifacts, threads: "1", json: true }, true)).trim());
  expect(run).toMatchObject({ mode: "run", bits: 4 });
  expect(run.gbps).toBeGreaterThan(0);
  const full = JSON.parse((await runEngineBench("full", { artifacts, threads: "1", iters: "2", json: true }, true)).trim());
  expect(full.mode).toBe("full");
  for (const k of ["ms_per_op", "gbps", "kernel_ceiling_gbps", "memory_read_gbps", "fraction_of_kernel_ceiling", "fraction_of_memory_ceiling"]) {
    expect(full[k]).toBeGreaterThan(0);
  }
}, 60_000); // the ceilings are measured (a multi-threaded read and a single-core matvec over large buffers)
