// The engine with --backend metal-emu: the whole forward pass (prefill and decode) on the emulated Metal device,
// selected like a real backend — the batch logits mode and the protocol (through lib/engine's engineArgv).
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

test("an unknown backend and an unsupported KV type are clear load errors", async () => {
  const bad = await logits(mlx, "vulkan");
  expect(bad.code).not.toBe(0);
  expect(bad.err).toContain("unknown backend 'vulkan'");
  const q8 = await logits(mlx, "metal-emu", ["--kv-type", "q8"]);
  expect(q8.code).not.toBe(0);
  expect(q8.err).toContain("--kv-type q8 is not supported");
});

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

test("engine bench verify --backend metal-emu checks the device's prefill and decode logits against the CPU layer loop", async () => {
  const proc = Bun.spawn([ENGINE, "bench", "verify", "--artifacts", mlx, "--backend", "metal-emu", "--threads", "2", "--context", "64", "--json"],
    { stdout: "pipe", stderr: "pipe" });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  const r = JSON.parse(out) as { backend: string; ok: boolean; results: { name: string; max_rel_err: number; argmax_mismatches?: number }[] };
  expect(r.backend).toBe("metal-emu");
  const gpu = r.results.filter((x) => x.name.startsWith("metal-emu/"));
  expect(gpu.map((x) => x.name)).toEqual(["metal-emu/prefill logits (all positions)", "metal-emu/decode logits (next token)"]);
  for (const x of gpu) {
    expect(x.max_rel_err).toBeLessThan(1e-3);
    expect(x.argmax_mismatches).toBe(0);
  }
  expect(r.ok).toBe(true);
  expect(code).toBe(0);
});
