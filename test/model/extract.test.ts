import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "pathe";
import { extractWeights, type WeightsManifest } from "../../lib/model/extract.ts";
import { loadTensorIndex, readTensorBytes } from "../../lib/model/safetensors.ts";
import { FIXTURE, makeTempDir, removeDir } from "./_helpers.ts";

const tmp = makeTempDir();
afterAll(() => removeDir(tmp));

describe("extractWeights on the MLX fixture", async () => {
  const out = join(tmp, "a");
  const r = await extractWeights({ checkpointDir: FIXTURE, outDir: out, repo: "tiny" });
  const manifest: WeightsManifest = JSON.parse(readFileSync(r.weightsJson, "utf8"));
  const bin = readFileSync(r.weightsBin);
  const src = loadTensorIndex(FIXTURE).tensors;

  test("manifest header and config", () => {
    expect(manifest.format).toBe("flashchat-weights");
    expect(manifest.version).toBe(1);
    expect(manifest.source).toEqual({ format: "mlx", repo: "tiny", bits: 4, group_size: 64 });
    expect(manifest.config).toEqual({
      model_type: "qwen3_5_moe_text", vocab_size: 512, hidden_size: 128, num_hidden_layers: 4,
      layer_types: ["linear_attention", "linear_attention", "linear_attention", "full_attention"],
      num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64,
      linear_num_key_heads: 2, linear_num_value_heads: 4, linear_key_head_dim: 32, linear_value_head_dim: 32, linear_conv_kernel_dim: 4,
      num_experts: 8, num_experts_per_tok: 2, moe_intermediate_size: 64, shared_expert_intermediate_size: 64,
      norm_topk_prob: true, rms_norm_eps: 1e-6, rope_theta: 10000000, partial_rotary_factor: 0.25,
      max_position_embeddings: 4096, tie_word_embeddings: false, eos_token_id: [507], bos_token_id: null,
    });
  });

  test("every non-expert, non-vision tensor, prefix stripped, bytes identical, 64-aligned", () => {
    const expected = [...src.keys()].filter((n) => !n.startsWith("vision_tower.") && !n.includes(".switch_mlp."));
    expect(manifest.tensors.length).toBe(expected.length);
    for (const t of manifest.tensors) {
      expect(t.name.startsWith("language_model.")).toBe(false);
      expect(t.offset % 64).toBe(0);
      const s = src.get(`language_model.${t.name}`)!;
      expect(s).toBeDefined();
      expect([t.dtype, t.shape, t.size]).toEqual([s.dtype, s.shape, s.size]);
      expect(Buffer.from(bin.subarray(t.offset, t.offset + t.size)).equals(Buffer.from(readTensorBytes(s)))).toBe(true);
    }
    const last = manifest.tensors.at(-1)!;
    expect(bin.length).toBe(manifest.tensors.reduce((a, t) => Math.max(a, t.offset + t.size), 0));
    expect(last.offset).toBeGreaterThan(0);
  });

  test("bits and group size on quantized weights only (routers 8-bit)", () => {
    const byName = new Map(manifest.tensors.map((t) => [t.name, t]));
    expect(byName.get("model.layers.0.mlp.gate.weight")).toMatchObject({ dtype: "U32", shape: [8, 32], bits: 8, group_size: 64 });
    expect(byName.get("model.layers.2.mlp.shared_expert_gate.weight")).toMatchObject({ bits: 8 });
    expect(byName.get("lm_head.weight")).toMatchObject({ dtype: "U32", shape: [512, 16], bits: 4, group_size: 64 });
    expect(byName.get("model.layers.0.linear_attn.A_log")).toEqual({ name: "model.layers.0.linear_attn.A_log", dtype: "F32", shape: [4], offset: expect.any(Number), size: 16 });
    expect(byName.get("lm_head.scales")!.bits).toBeUndefined();
  });

  test("deterministic: a second run gives identical files", async () => {
    const r2 = await extractWeights({ checkpointDir: FIXTURE, outDir: join(tmp, "b"), repo: "tiny" });
    expect(readFileSync(r2.weightsBin).equals(bin)).toBe(true);
    expect(readFileSync(r2.weightsJson, "utf8")).toBe(readFileSync(r.weightsJson, "utf8"));
  });
});
