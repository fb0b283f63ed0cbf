// The engine with --backend metal-emu: the Metal layer backend (prefill and decode) on the emulated Metal device,
// selected like a real backend — the batch logits mode, bench verify op by op, mapped experts, and the protocol
// with prefix-reuse snapshots (through lib/engine's engineArgv).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "pathe";
import { repackExperts } from "../../lib/model/repack.ts";
import { type Engine, engineArgv, startEngine } from "../../lib/engine/client.ts";
import type { GenerateEvent } from "../../lib/engine/types.ts";
import {
  argmaxRow, buildEngine, ENGINE, expectedLogits, FIXTURE, greedy, makeFixtureArtifacts, makeTempDir, prompt, readF32, removeDir, rowMaxDiff,
} from "../engine/_fixture.ts";

const dirs: string[] = [];
let mlx = "";
beforeAll(async () => {
  await buildEngine();
  mlx = await makeFixtureArtifacts("mlx");
  dirs.push(mlx);
});
afterAll(() => dirs.forEach(removeDir));

async function logits(artifacts: string, backend: string, extra: string[] = []) {
  const out = join(makeTempDir(), "logits.f32");
  dirs.push(join(out, ".."));
  const argv = [ENGINE, "logits", ...engineArgv({ artifactsDir: artifacts, threads: 2, context: 64, backend }), "--tokens", prompt().join(","),
    "--out", out, ...extra];
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  return { err, code, logits: code === 0 ? readF32(out) : new Float32Array() };
}

test("engine logits --backend metal-emu reproduces the fixture's logits within the CPU tolerance, from both checkpoint formats", async () => {
  const hf = await makeFixtureArtifacts("hf-bf16");
  dirs.push(hf);
  for (const dir of [mlx, hf]) {
    const gpu = await logits(dir, "metal-emu", ["--batch", "13"]);
    expect(gpu.err).toContain("backend metal-emu");
    expect(gpu.code).toBe(0);
    expect(Math.max(...rowMaxDiff(gpu.logits, expectedLogits(), 32))).toBeLessThan(1e-3);
    const cpu = await logits(dir, "cpu:generic"); // a float level: the default may round prefill activations to int8
    expect(Math.max(...rowMaxDiff(gpu.logits, cpu.logits, 32))).toBeLessThan(1e-3);
  }
});

test("with 2-bit experts the device's logits agree with the CPU backend's at every position, top tokens included", async () => {
  await repackExperts({ checkpointDir: FIXTURE, outDir: mlx, bits: 2 });
  const extra = ["--experts", join(mlx, "packed_experts_2bit")];
  const gpu = await logits(mlx, "metal-emu", extra), cpu = await logits(mlx, "cpu:generic", extra);
  expect(gpu.code).toBe(0);
  expect(Math.max(...rowMaxDiff(gpu.logits, cpu.logits, 32))).toBeLessThan(1e-3);
  for (let r = 0; r < 32; r++) expect(argmaxRow(gpu.logits, r)).toBe(argmaxRow(cpu.logits, r));
});

test("an unknown backend is a clear one-line load error", async () => {
  const bad = await logits(mlx, "vulkan");
  expect(bad.code).not.toBe(0);
  expect(bad.err).toContain("unknown backend 'vulkan'");
  expect(bad.err.trim().split("\n")).toHaveLength(1);
});

for (const kv of ["bf16", "q8"]) {
  test(`with a ${kv} KV cache the device's logits agree with the CPU's ${kv} cache at every position, top tokens included`, async () => {
    const gpu = await logits(mlx, "metal-emu", ["--kv-type", kv, "--batch", "13"]);
    const cpu = await logits(mlx, "cpu:generic", ["--kv-type", kv]);
    expect(gpu.err).toContain(`KV ${kv}`);
    expect(gpu.code).toBe(0);
    expect(Math.max(...rowMaxDiff(gpu.logits, cpu.logits, 32))).toBeLessThan(1e-3);
    for (let r = 0; r < 32; r++) expect(argmaxRow(gpu.logits, r)).toBe(argmaxRow(cpu.logits, r));
    // and it is that cache: further from the f32 cache's logits than the two runs are from each other
    const f32 = await logits(mlx, "cpu:generic", ["--kv-type", "f32"]);
    expect(Math.max(...rowMaxDiff(gpu.logits, f32.logits, 32))).toBeGreaterThan(Math.max(...rowMaxDiff(gpu.logits, cpu.logits, 32)));
  });
}

test("through the protocol, --backend metal-emu decodes the fixture's greedy tokens and names itself in ready", async () => {
  let engine: Engine | undefined;
  try {
    engine = await startEngine({ artifactsDir: mlx, threads: 2, context: 64, backend: "metal-emu" });
    expect(engine.ready.backend).toBe("metal-emu");
    const want = greedy().generated_ids.slice(0, 6);
    const run = async () => {
      const toks: number[] = [];
      for await (const ev of engine!.generate({ tokens: prompt(), max_tokens: want.length, stop_tokens: [] }) as AsyncIterable<GenerateEvent>) {
        if (ev.type === "token") toks.push(ev.token);
      }
      return toks;
    };
    expect(await run()).toEqual(want);
    // a second request continues from the live sequence or starts again: the same tokens either way
    expect(await run()).toEqual(want);
  } finally {
    await engine?.close();
  }
});

test("engine bench verify --backend metal-emu checks the device against the CPU op by op, prefill and decode, each within its tolerance", async () => {
  const proc = Bun.spawn([ENGINE, "bench", "verify", "--artifacts", mlx, "--backend", "metal-emu", "--threads", "2", "--context", "64", "--json"],
    { stdout: "pipe", stderr: "pipe" });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  const r = JSON.parse(out) as {
    backend: string; ok: boolean; results: { name: string; op?: string; tokens: number; max_rel_err: number; mismatches?: number; ok: boolean }[];
  };
  expect(r.backend).toBe("metal-emu");
  const gpu = r.results.filter((x) => x.name.startsWith("metal-emu/"));
  const ops = ["rmsnorm", "qkv", "rope", "attention", "deltanet", "router", "experts", "combine", "logits"];
  expect(gpu.map((x) => x.name)).toEqual([...ops.map((o) => `metal-emu/prefill/${o}`), ...ops.map((o) => `metal-emu/decode/${o}`)]);
  // the tolerance per op (relative to the CPU's largest magnitude); routing ids and argmax identical
  const tol: Record<string, number> = {
    rmsnorm: 1e-4, qkv: 1e-5, rope: 1e-5, attention: 5e-4, deltanet: 1e-4, router: 1e-4, experts: 1e-4, combine: 1e-4, logits: 1e-4,
  };
  for (const x of gpu) {
    expect(x.max_rel_err).toBeGreaterThan(0); // compared for real: the GPU's float order differs somewhere
    expect(x.max_rel_err).toBeLessThan(tol[x.op!]!);
    expect(x.mismatches).toBe(0);
    expect(x.ok).toBe(true);
    expect(x.tokens).toBe(x.name.includes("/prefill/") ? 16 : 1);
  }
  expect(r.ok).toBe(true);
  expect(code).toBe(0);
});

test("the device reads the experts in place from the mapped layer files (--expert-io mmap): the same logits as pread", async () => {
  const pread = await logits(mlx, "metal-emu", ["--batch", "13", "--expert-io", "pread"]);
  const mapped = await logits(mlx, "metal-emu", ["--batch", "13", "--expert-io", "mmap"]);
  expect(mapped.err).toContain("experts by mmap");
  expect(mapped.code).toBe(0);
  expect(Math.max(...rowMaxDiff(mapped.logits, pread.logits, 32))).toBe(0);
  expect(Math.max(...rowMaxDiff(mapped.logits, expectedLogits(), 32))).toBeLessThan(1e-3);
});

test("prefix reuse on the device: snapshots of its state are restored, with the tokens of a fresh engine", async () => {
  const start = () => startEngine({ artifactsDir: mlx, threads: 2, context: 64, backend: "metal-emu" });
  const collect = async (engine: Engine, req: Parameters<Engine["generate"]>[0]) => {
    const toks: number[] = [];
    let cached = -1;
    for await (const ev of engine.generate(req) as AsyncIterable<GenerateEvent>) {
      if (ev.type === "token") toks.push(ev.token);
      if (ev.type === "done") cached = (ev as unknown as { cached_tokens: number }).cached_tokens;
    }
    return { toks, cached };
  };
  let a: Engine | undefined, b: Engine | undefined;
  try {
    a = await start();
    const p = prompt();
    await collect(a, { tokens: p.slice(0, 20), max_tokens: 2, stop_tokens: [], snapshot_at: [10] });
    // a prompt sharing only the first 10 tokens: the snapshot at 10 (state and KV rows) is restored
    const other = [...p.slice(0, 10), ...p.slice(21, 32)];
    const reused = await collect(a, { tokens: other, max_tokens: 6, stop_tokens: [] });
    expect(reused.cached).toBe(10);
    // the full prompt: the snapshot at 20 kept its own copy of the attention rows the other prompt overwrote
    const full = await collect(a, { tokens: p, max_tokens: 8, stop_tokens: [] });
    expect(full.cached).toBe(20);
    expect(full.toks).toEqual(greedy().generated_ids.slice(0, 8));
    b = await start();
    const fresh = await collect(b, { tokens: other, max_tokens: 6, stop_tokens: [] });
    expect(fresh.cached).toBe(0);
    expect(reused.toks).toEqual(fresh.toks);
  } finally {
    await a?.close();
    await b?.close();
  }
});
