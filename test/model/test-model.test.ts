import { afterAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "pathe";
import { describeExperts, loadCheckpoint } from "../../lib/model/checkpoint.ts";
import { extractWeights } from "../../lib/model/extract.ts";
import { layoutComponents } from "../../lib/model/expert-layout.ts";
import { bf16ToF32, dequantizeAffine } from "../../lib/model/quantize.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { loadTensorIndex, readTensorBytes } from "../../lib/model/safetensors.ts";
import { bundledQwenTokenizerDir, describeTestModel, resolveTestModelDims, tokenizerMaxId, writeTestModel } from "../../lib/model/test-model.ts";
import { FIXTURE, makeTempDir, removeDir } from "./_helpers.ts";

const tmp = makeTempDir();
afterAll(() => removeDir(tmp));
const files = (dir: string) => ["config.json", "model.safetensors.index.json", ...loadTensorIndex(dir).files.map((f) => f.split("/").pop()!)];

test("tiny: the fixture's config, tensor names, dtypes and shapes", async () => {
  const dir = join(tmp, "tiny");
  await writeTestModel({ outDir: dir, dims: "tiny", seed: 1 });
  const gen = loadCheckpoint(dir);
  const fix = loadCheckpoint(FIXTURE);
  expect(gen.config).toEqual(fix.config);
  expect(gen.quant).toEqual(fix.quant);
  expect([...gen.quantOverrides]).toEqual([...fix.quantOverrides]);
  const shape = (m: Map<string, { dtype: string; shape: number[] }>) => [...m].map(([n, t]) => [n, t.dtype, t.shape]).sort();
  expect(shape(gen.tensors)).toEqual(shape(fix.tensors));
});

test("tiny in hf-bf16 format: the fixture's HF names, dtypes and shapes; extracted like the MLX one", async () => {
  const dir = join(tmp, "tiny-hf");
  await writeTestModel({ outDir: dir, dims: "tiny", seed: 1, format: "hf-bf16" });
  const gen = loadCheckpoint(dir);
  const fix = loadCheckpoint(join(FIXTURE, "hf-bf16"));
  expect(gen.format).toBe("hf-bf16");
  expect(gen.config).toEqual(fix.config);
  const shape = (m: Map<string, { dtype: string; shape: number[] }>) => [...m].map(([n, t]) => [n, t.dtype, t.shape]).sort();
  expect(shape(gen.tensors)).toEqual(shape(fix.tensors));
  const w = new Uint16Array(readTensorBytes(gen.tensors.get("model.layers.0.mlp.experts.down_proj")!).buffer);
  let ss = 0;
  for (const h of w) ss += bf16ToF32(h) ** 2;
  expect(Math.sqrt(ss / w.length) * Math.sqrt(64)).toBeCloseTo(1, 1); // std 1/sqrt(fan_in)
  const out = join(tmp, "tiny-hf-out");
  const a = await extractWeights({ checkpointDir: dir, outDir: out });
  expect(a.tensors).toBe(146);
  expect((await repackExperts({ checkpointDir: dir, outDir: out, verify: true })).layersWritten).toEqual([0, 1, 2, 3]);
});

test("deterministic from the seed; sharded with a consistent index", async () => {
  const a = join(tmp, "a");
  const b = join(tmp, "b");
  const c = join(tmp, "c");
  await writeTestModel({ outDir: a, dims: "tiny", seed: 7, shardBytes: 300_000 });
  await writeTestModel({ outDir: b, dims: "tiny", seed: 7, shardBytes: 300_000 });
  await writeTestModel({ outDir: c, dims: "tiny", seed: 8, shardBytes: 300_000 });
  expect(files(a).length).toBe(2 + 3);
  for (const f of files(a)) expect(readFileSync(join(b, f)).equals(readFileSync(join(a, f)))).toBe(true);
  expect(readFileSync(join(c, files(a)[2]!)).equals(readFileSync(join(a, files(a)[2]!)))).toBe(false);
  const index = JSON.parse(readFileSync(join(a, "model.safetensors.index.json"), "utf8"));
  const tensors = loadTensorIndex(a).tensors;
  expect(index.metadata.total_size).toBe([...tensors.values()].reduce((s, t) => s + t.size, 0));
});

test("weights have the intended statistics (std = gain / sqrt(fan_in)) and pass through extract + repack --verify", async () => {
  const dir = join(tmp, "stats");
  await writeTestModel({ outDir: dir, dims: "tiny", seed: 3 });
  const t = loadTensorIndex(dir).tensors;
  const m = "language_model.model.layers.0.mlp.switch_mlp.gate_proj";
  const w = dequantizeAffine(
    new Uint32Array(readTensorBytes(t.get(`${m}.weight`)!).buffer), new Uint16Array(readTensorBytes(t.get(`${m}.scales`)!).buffer),
    new Uint16Array(readTensorBytes(t.get(`${m}.biases`)!).buffer), 8 * 64, 128, 4, 64,
  );
  const mean = w.reduce((a, b) => a + b, 0) / w.length;
  const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
  expect(Math.abs(mean)).toBeLessThan(0.01);
  expect(std / (1 / Math.sqrt(128))).toBeGreaterThan(0.95);
  expect(std / (1 / Math.sqrt(128))).toBeLessThan(1.05);
  const out = join(tmp, "stats-out");
  await extractWeights({ checkpointDir: dir, outDir: out });
  const r = await repackExperts({ checkpointDir: dir, outDir: out, verify: true });
  expect(r.layersWritten).toEqual([0, 1, 2, 3]);
});

test("real dimensions: Qwen3.5-397B-A17B sliced to 2 layers is 7.25 GB of experts and about 1.3 GB of dense tensors", () => {
  const d = resolveTestModelDims("qwen35-397b", 2);
  expect(d).toMatchObject({ hidden_size: 4096, num_hidden_layers: 2, num_experts: 512, num_experts_per_tok: 10, moe_intermediate_size: 1024, vocab_size: 248320 });
  const specs = describeTestModel(d);
  const bytes = (s: { dtype: string; shape: number[] }) => s.shape.reduce((a, b) => a * b, 1) * (s.dtype === "U32" || s.dtype === "F32" ? 4 : 2);
  const experts = specs.filter((s) => s.name.includes("switch_mlp")).reduce((a, s) => a + bytes(s), 0);
  const dense = specs.filter((s) => !s.name.includes("switch_mlp")).reduce((a, s) => a + bytes(s), 0);
  expect(experts).toBe(2 * 3623878656);
  expect(dense / 1e9).toBeGreaterThan(1.25);
  expect(dense / 1e9).toBeLessThan(1.35);
  const q36 = resolveTestModelDims("qwen36-35b");
  expect(q36).toMatchObject({ hidden_size: 2048, num_hidden_layers: 40, num_experts: 256, num_experts_per_tok: 8, moe_intermediate_size: 512 });
  // one expert of the 397B at 4 bits: 3 x (2 MiB codes + 2 x 128 KiB scales/biases) = 6.75 MiB, already 4096-aligned
  const fake = { layer: 0, shapes: { gate_proj: [1024, 4096], up_proj: [1024, 4096], down_proj: [4096, 1024] }, sources: {} } as never;
  expect(layoutComponents(fake, 4, 64, "BF16").expertSize).toBe(7077888);

});

test("demo: vocabulary covers the bundled Qwen3 tokenizer, whose files are copied", async () => {
  const tok = bundledQwenTokenizerDir();
  expect(existsSync(join(tok, "tokenizer.json"))).toBe(true);
  expect(resolveTestModelDims("demo").vocab_size).toBeGreaterThan(tokenizerMaxId(join(tok, "tokenizer.json")));
  // a preset whose vocabulary is too small for the tokenizer is refused
  await expect(writeTestModel({ outDir: join(tmp, "bad"), dims: "tiny", tokenizerDir: tok })).rejects.toThrow("smaller than the tokenizer's");
  const dir = join(tmp, "demo");
  await writeTestModel({ outDir: dir, dims: "demo", layers: 1, tokenizerDir: tok });
  expect(readFileSync(join(dir, "tokenizer.json")).equals(readFileSync(join(tok, "tokenizer.json")))).toBe(true);
  expect(existsSync(join(dir, "tokenizer_config.json"))).toBe(true);
  const c = loadCheckpoint(dir);
  expect(c.config.eos_token_id).toEqual([151645, 151643]);
  expect(describeExperts(c).map((l) => l.layer)).toEqual([0]);
}, 30_000); // parses the 11 MB tokenizer.json: slow on a loaded machine

const ENGINE = join(import.meta.dir, "../../native/build/flashchat-engine");

test.skipIf(!existsSync(ENGINE))("the engine loads a generated model and its logits are sane (finite, std near the lm_head gain)", async () => {
  const dir = join(tmp, "engine-ckpt");
  const art = join(tmp, "engine-art");
  await writeTestModel({ outDir: dir, dims: "tiny", seed: 21 });
  await extractWeights({ checkpointDir: dir, outDir: art });
  await repackExperts({ checkpointDir: dir, outDir: art });
  const out = join(tmp, "logits.f32");
  await using proc = Bun.spawn([ENGINE, "logits", "--artifacts", art, "--tokens", "1,2,3,4,5,6,7,8", "--out", out, "--threads", "1"], { stdout: "pipe", stderr: "pipe" });
  const [stderr, code] = await Promise.all([proc.stderr.text(), proc.exited]);
  expect([code, stderr]).toEqual([0, expect.any(String)]);
  const x = new Float32Array(readFileSync(out).buffer.slice(0));
  expect(x.length).toBe(8 * 512);
  for (let p = 0; p < 8; p++) {
    const row = x.subarray(p * 512, (p + 1) * 512);
    expect(row.every(Number.isFinite)).toBe(true);
    const m = row.reduce((a, b) => a + b, 0) / 512;
    const std = Math.sqrt(row.reduce((a, b) => a + (b - m) ** 2, 0) / 512);
    expect(std).toBeGreaterThan(1);
    expect(std).toBeLessThan(6);
  }
});
