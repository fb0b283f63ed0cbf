import { afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { ceilingPercents, loadTokenBytes, renderBytes, renderCeilings, resolveCeilings, resolveDiskCeiling, resolveTokenBytes } from "../../lib/bench/roofline.ts";
import { UserError } from "../../lib/errors.ts";

// Manifest excerpts of a 2-layer model: embedding 1000 rows, one dense matrix, lm_head; experts 3 components.
const manifest = (tied = false) => ({
  config: { num_experts_per_tok: 4, num_hidden_layers: 2, tie_word_embeddings: tied, hidden_size: 64 },
  tensors: [
    { name: "model.embed_tokens.weight", shape: [1000, 8], size: 32_000, bits: 4 },
    { name: "model.embed_tokens.scales", shape: [1000, 1], size: 2_000 },
    { name: "model.embed_tokens.biases", shape: [1000, 1], size: 2_000 },
    { name: "model.layers.0.self_attn.q_proj.weight", shape: [64, 8], size: 2_048 },
    { name: "model.norm.weight", shape: [64], size: 128 },
    ...(tied ? [] : [{ name: "lm_head.weight", shape: [1000, 8], size: 32_000, bits: 8 }]),
  ],
});
const layout = { bits: 4, expert_size: 8192, components: [{ size: 3000 }, { size: 3000 }, { size: 1500 }], layers: [{ layer: 0 }, { layer: 1 }] };

test("a token reads one embedding row, every other dense tensor, and K experts per MoE layer", () => {
  const b = resolveTokenBytes(manifest(), layout);
  expect(b).toEqual({
    denseBytes: 32 + 2 + 2 + 2_048 + 128 + 32_000,
    expertBytesUsed: 4 * 2 * 7_500,
    expertBytesRead: 4 * 2 * 8192,
    k: 4,
    moeLayers: 2,
    expertBits: 4,
    denseBits: 8,
    totalBytes: 34_212 + 60_000,
  });
});

test("tied embeddings are read whole (they are the lm_head); K can be overridden", () => {
  const b = resolveTokenBytes(manifest(true), layout, 2);
  expect(b.denseBytes).toBe(36_000 + 2_048 + 128);
  expect(b.expertBytesUsed).toBe(2 * 2 * 7_500);
  expect(b.denseBits).toBe(4);
});

test("ceilings: memory, disk for a cold cache, and the kernel one when its throughput is known", () => {
  // recorded: 1 GB dense, 6 GB of experts per token (7 GB touched), 34 GB/s memory, 5 GB/s disk, 9 GB/s/core kernel
  const b = { denseBytes: 1e9, expertBytesUsed: 6e9, expertBytesRead: 6e9, k: 10, moeLayers: 60, expertBits: 4, denseBits: 4, totalBytes: 7e9 };
  const c = resolveCeilings(b, { memoryGBs: 35, diskGBs: 5, kernelGBsPerCore: 9, threads: 2 });
  expect(c.memory).toBeCloseTo(5, 10);
  expect(c.disk).toBeCloseTo(1 / (1 / 35 + 6 / 5), 10);
  expect(c.kernel).toBeCloseTo(18 / 7, 10);
  const p = ceilingPercents(2, c);
  expect(p.memory).toBeCloseTo(40, 10);
  expect(p.kernel).toBeCloseTo((100 * 2 * 7) / 18, 10);
  expect(resolveCeilings(b, { memoryGBs: 35, diskGBs: null })).toEqual({ memory: 5, disk: null, kernel: null });
  expect(renderCeilings(2, c)).toBe("40% of mem 5.00 · 78% of kernel 2.57");
  expect(renderCeilings(0.5, c, { cold: true })).toBe(`61% of disk ${(1 / (1 / 35 + 6 / 5)).toFixed(3)}`);
  expect(renderBytes(6_750_000)).toBe("6.75 MB");
});

let dir: string | undefined;
afterEach(() => dir && rmSync(dir, { recursive: true, force: true }));

test("loadTokenBytes reads the artifacts' manifests; a folder without them is a user error", () => {
  dir = mkdtempSync(join(tmpdir(), "flashchat-roofline-"));
  expect(() => loadTokenBytes(dir!)).toThrow(UserError);
  writeFileSync(join(dir, "model_weights.json"), JSON.stringify(manifest()));
  mkdirSync(join(dir, "packed_experts"));
  writeFileSync(join(dir, "packed_experts", "layout.json"), JSON.stringify(layout));
  expect(loadTokenBytes(dir).totalBytes).toBe(94_212);
  mkdirSync(join(dir, "packed_experts_2bit"));
  writeFileSync(join(dir, "packed_experts_2bit", "layout.json"), JSON.stringify({ ...layout, bits: 2, expert_size: 4096, components: [{ size: 1000 }] }));
  const b2 = loadTokenBytes(dir, { expertsDir: join(dir, "packed_experts_2bit"), k: 1 });
  expect([b2.expertBits, b2.expertBytesUsed, b2.expertBytesRead]).toEqual([2, 2000, 8192]);
});

test("the disk ceiling counts only the bytes that came from disk; the rest are read at memory speed", () => {
  // 1 GB per token: all from memory at 10 GB/s -> 10 tok/s; all from a 1 GB/s disk -> 1 tok/s
  expect(resolveDiskCeiling(1e9, 0, 10, 1)).toBeCloseTo(10, 9);
  expect(resolveDiskCeiling(1e9, 1e9, 10, 1)).toBeCloseTo(1, 9);
  // half from disk: 0.5 GB / 10 GB/s + 0.5 GB / 1 GB/s = 0.55 s
  expect(resolveDiskCeiling(1e9, 5e8, 10, 1)).toBeCloseTo(1 / 0.55, 9);
  // counts outside [0, bytes] are clamped; no disk figure, no ceiling
  expect(resolveDiskCeiling(1e9, 2e9, 10, 1)).toBeCloseTo(1, 9);
  expect(resolveDiskCeiling(1e9, 5e8, 10, null)).toBeNull();
});
