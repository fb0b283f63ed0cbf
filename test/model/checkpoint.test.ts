import { afterAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import { UserError } from "../../lib/errors.ts";
import { canonicalName, compareNames, describeDense, describeExperts, loadCheckpoint, resolveEngineConfig } from "../../lib/model/checkpoint.ts";
import { copyFixture, FIXTURE, FIXTURE_HF, makeTempDir, removeDir } from "./_helpers.ts";

const tmp = makeTempDir();
afterAll(() => removeDir(tmp));

test("names: prefixes stripped or mapped, vision and MTP dropped", () => {
  expect(canonicalName("language_model.model.layers.0.mlp.gate.weight")).toBe("model.layers.0.mlp.gate.weight");
  expect(canonicalName("language_model.lm_head.weight")).toBe("lm_head.weight");
  expect(canonicalName("model.language_model.norm.weight")).toBe("model.norm.weight");
  expect(canonicalName("lm_head.weight")).toBe("lm_head.weight");
  for (const n of ["vision_tower.blocks.0.norm1.weight", "model.visual.patch_embed.proj.weight", "mtp.layers.0.x"]) expect(canonicalName(n)).toBeNull();
  expect(["a.10.b", "a.2.b", "a.b"].sort(compareNames)).toEqual(["a.2.b", "a.10.b", "a.b"]);
});

test("the MLX fixture: format, quantization and per-module overrides, experts", () => {
  const c = loadCheckpoint(FIXTURE);
  expect(c.format).toBe("mlx");
  expect(c.quant).toEqual({ bits: 4, groupSize: 64 });
  expect(c.quantOverrides.get("model.layers.3.mlp.shared_expert_gate")).toEqual({ bits: 8, groupSize: 64 });
  expect([...c.tensors.keys()].some((n) => n.includes("vision"))).toBe(false);
  const experts = describeExperts(c);
  expect(experts.map((l) => l.layer)).toEqual([0, 1, 2, 3]);
  expect(experts[0]!.shapes).toEqual({ gate_proj: [64, 128], up_proj: [64, 128], down_proj: [128, 64] });
  expect(experts[0]!.sources.gate_proj).toMatchObject({ kind: "mlx", bits: 4, groupSize: 64 });
  const dense = describeDense(c);
  expect(dense.every((t) => t.source.kind === "copy")).toBe(true);
  expect(dense.find((t) => t.name === "model.layers.1.mlp.gate.weight")).toMatchObject({ bits: 8, groupSize: 64 });
});

test("the HF fixture: fused gate_up split per projection, routers at 8 bits, norms + 1", () => {
  const c = loadCheckpoint(FIXTURE_HF);
  expect(c.format).toBe("hf-bf16");
  expect(c.quant).toBeNull();
  const l0 = describeExperts(c)[0]!;
  expect(l0.sources.gate_proj).toMatchObject({ kind: "hf-stacked", rowStart: 0 });
  expect(l0.sources.up_proj).toMatchObject({ kind: "hf-stacked", rowStart: 64 });
  const dense = new Map(describeDense(c, { bits: 2 }).map((t) => [t.name, t]));
  expect(dense.get("model.layers.0.mlp.gate.weight")).toMatchObject({ dtype: "U32", shape: [8, 32], bits: 8 });
  expect(dense.get("model.layers.0.linear_attn.in_proj_qkv.weight")).toMatchObject({ dtype: "U32", shape: [256, 8], bits: 2 });
  expect(dense.get("model.layers.0.input_layernorm.weight")).toMatchObject({ dtype: "F32", source: { kind: "plus-one" } });
  expect(dense.get("model.layers.0.linear_attn.norm.weight")).toMatchObject({ dtype: "BF16", source: { kind: "copy" } });
  expect(dense.get("model.layers.0.linear_attn.conv1d.weight")).toMatchObject({ shape: [256, 4, 1] });
});

test("config: text_config nesting, defaults, eos as a list, layer_types from the interval", () => {
  const raw = JSON.parse(readFileSync(join(FIXTURE, "config.json"), "utf8"));
  const flat = { ...raw.text_config, model_type: "qwen3_next", eos_token_id: 7, layer_types: undefined, full_attention_interval: 2 };
  const c = resolveEngineConfig(flat);
  expect(c.eos_token_id).toEqual([7]);
  expect(c.layer_types).toEqual(["linear_attention", "full_attention", "linear_attention", "full_attention"]);
  expect(c.model_type).toBe("qwen3_next");
});

function expectUserError(fn: () => unknown, ...parts: string[]) {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UserError);
  for (const p of parts) expect(`${(err as UserError).message} ${(err as UserError).hint ?? ""}`).toContain(p);
}

test("unsupported architecture or format names what is supported", () => {
  const dir = copyFixture(join(tmp, "llama"));
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, model_type: "llama", text_config: { ...cfg.text_config, model_type: "llama" } }));
  expectUserError(() => loadCheckpoint(dir), "unsupported architecture", "llama", "supported: Qwen3.5-MoE");
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, quantization: { ...cfg.quantization, mode: "mxfp4" } }));
  expectUserError(() => loadCheckpoint(dir), "mxfp4", "only affine");
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, quantization: undefined, quantization_config: { quant_method: "gptq", bits: 4 } }));
  expectUserError(() => loadCheckpoint(dir), "gptq");
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, text_config: { ...cfg.text_config, hidden_size: undefined } }));
  expectUserError(() => loadCheckpoint(dir), "hidden_size is missing");
  writeFileSync(join(dir, "config.json"), "{");
  expectUserError(() => loadCheckpoint(dir), "config.json", "not valid JSON");
});

test("quantized shapes that contradict the config name the tensor", () => {
  const dir = copyFixture(join(tmp, "wrongbits"));
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  delete cfg.quantization["language_model.model.layers.1.mlp.gate"];
  delete cfg.quantization_config;
  writeFileSync(join(dir, "config.json"), JSON.stringify(cfg));
  expectUserError(() => describeDense(loadCheckpoint(dir)), "model.layers.1.mlp.gate.weight", "do not match 4-bit");
  const dir2 = copyFixture(join(tmp, "wrongexperts"));
  writeFileSync(join(dir2, "config.json"), JSON.stringify({ ...cfg, text_config: { ...cfg.text_config, num_experts: 16 } }));
  expectUserError(() => describeExperts(loadCheckpoint(dir2)), "switch_mlp", "expected [16,");
});
