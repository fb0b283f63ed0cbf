import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "pathe";
import { loadFlashchatConfig } from "../../lib/config/index.ts";
import { UserError } from "../../lib/errors.ts";
import { extractWeights } from "../../lib/model/extract.ts";
import { archFromConfig, estimateSizes, findModel, formatFromConfig, MODELS } from "../../lib/model/registry.ts";
import { requestSampling, resolveModelTarget, serverSampling } from "../../lib/model/target.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { TEST_MODEL_PRESETS } from "../../lib/model/test-model.ts";

const FIXTURE = resolve(import.meta.dir, "../fixtures/tiny-qwen35-moe");
let tmp: string;
let env: Record<string, string>;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "flashchat-registry-"));
  env = { HOME: tmp, XDG_CONFIG_HOME: join(tmp, "config"), XDG_DATA_HOME: join(tmp, "data"), XDG_CACHE_HOME: join(tmp, "cache") };
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const config = (overrides: Record<string, string> = {}) => loadFlashchatConfig({ env, cwd: tmp, overrides, createUserConfig: false });

describe("the registry", () => {
  test("knows the four models by id and by repo", () => {
    expect(MODELS.map((m) => m.id)).toEqual(["qwen3.5-397b", "qwen3.6-35b", "qwen3-next-80b", "demo"]);
    expect(findModel("mlx-community/qwen3.5-397b-a17b-4bit")?.id).toBe("qwen3.5-397b");
    expect(findModel("Qwen/Qwen3.6-35B-A3B")?.format).toBe("hf-bf16");
    expect(findModel("DEMO")?.origin).toBe("generated");
    expect(findModel("org/other")).toBeUndefined();
  });

  test("size estimates agree with the published parameter counts and the original project's figures", () => {
    const e = (id: string) => {
      const m = findModel(id)!;
      return estimateSizes(m.arch, { format: m.format, bits: m.bits });
    };
    const big = e("qwen3.5-397b");
    expect(big.params / 1e9).toBeCloseTo(397, -1); // "397B"
    expect(big.denseBytes / 1e9).toBeCloseTo(5.5, 0); // the original: model_weights.bin 5.5 GB
    expect(big.expertBytes).toBe(7_077_888); // 6.75 MiB per expert, one pread
    expect(big.experts2bitBytes / 1e9).toBeCloseTo(120, -1); // the original: 2-bit experts 120 GB
    expect(e("qwen3.6-35b").params / 1e9).toBeCloseTo(35, 0);
    expect(e("qwen3.6-35b").checkpointBytes / 1e9).toBeCloseTo(70, -1); // bf16: 2 bytes a parameter
    expect(e("qwen3-next-80b").params / 1e9).toBeCloseTo(80, 0);
    for (const m of MODELS) {
      const s = e(m.id);
      expect(s.ramMinBytes).toBeGreaterThan(s.denseBytes);
      expect(s.ramRecommendedBytes).toBeGreaterThanOrEqual(s.ramMinBytes);
    }
  });

  test("the real models' dimensions match the generator's presets of them, and the demo is the generator's demo", () => {
    const pairs: Array<[string, string]> = [["qwen3.5-397b", "qwen35-397b"], ["qwen3.6-35b", "qwen36-35b"], ["demo", "demo"]];
    for (const [id, preset] of pairs) {
      const arch = findModel(id)!.arch as Record<string, unknown>;
      const p = TEST_MODEL_PRESETS[preset] as unknown as Record<string, unknown>;
      for (const k of Object.keys(arch)) if (k in p) expect([k, arch[k]]).toEqual([k, p[k]]);
    }
  });

  test("estimates are exact for the experts and close for the dense weights of a real extract + repack", async () => {
    const out = join(tmp, "fixture-artifacts");
    await extractWeights({ checkpointDir: FIXTURE, outDir: out, onProgress: () => {} });
    await repackExperts({ checkpointDir: FIXTURE, outDir: out, onProgress: () => {} });
    const raw = JSON.parse(readFileSync(join(FIXTURE, "config.json"), "utf8"));
    expect(formatFromConfig(raw)).toBe("mlx");
    const est = estimateSizes(archFromConfig(raw), { format: "mlx" });
    const layout = JSON.parse(readFileSync(join(out, "packed_experts", "layout.json"), "utf8"));
    expect(est.expertBytes).toBe(layout.expert_size);
    const layerBytes = readdirSync(join(out, "packed_experts")).filter((f) => f.endsWith(".bin")).reduce((s, f) => s + statSync(join(out, "packed_experts", f)).size, 0);
    expect(est.expertsBytes).toBe(layerBytes);
    const dense = statSync(join(out, "model_weights.bin")).size;
    expect(Math.abs(est.denseBytes - dense) / dense).toBeLessThan(0.05);
  });

  test("a config.json is described whether or not the text model is nested (MLX conversions nest it)", () => {
    const raw = JSON.parse(readFileSync(join(FIXTURE, "config.json"), "utf8"));
    const flat = JSON.parse(readFileSync(join(FIXTURE, "hf-bf16", "config.json"), "utf8"));
    expect(archFromConfig(raw)).toMatchObject({ hidden_size: 128, num_hidden_layers: 4, num_experts: 8, num_experts_per_tok: 2, full_attention_interval: 4 });
    expect(archFromConfig(flat)).toEqual(archFromConfig(raw));
    expect(formatFromConfig(flat)).toBe("hf-bf16");
  });
});

describe("--model / MODEL_REPO", () => {
  test("demo: generated locally, its own folders", async () => {
    const t = resolveModelTarget(await config({ MODEL_REPO: "demo" }));
    expect(t).toMatchObject({
      kind: "demo",
      repo: "demo",
      checkpointDir: join(tmp, "data", "flashchat", "checkpoints", "demo"),
      artifactsDir: join(tmp, "data", "flashchat", "models", "demo"),
      expertsDir: join(tmp, "data", "flashchat", "models", "demo", "packed_experts"),
      activeExperts: 4,
      maxTokens: 200,
    });
    // MAX_TOKENS set anywhere wins over the demo's short default
    expect(resolveModelTarget(await config({ MODEL_REPO: "demo", MAX_TOKENS: "50" })).maxTokens).toBe(50);
    expect(resolveModelTarget(await config({ MODEL_REPO: "demo", MAX_TOKENS: "5000" })).maxTokens).toBe(5000);
    expect(resolveModelTarget(await config({ MODEL_REPO: "qwen3.5-397b" })).maxTokens).toBe(8192);
  });

  test("a registry id resolves to its repo; the default MODEL_REPO is the 397B", async () => {
    const t = resolveModelTarget(await config({ MODEL_REPO: "qwen3.5-397b" }));
    expect(t).toMatchObject({ kind: "hub", repo: "mlx-community/Qwen3.5-397B-A17B-4bit", checkpointDir: "", activeExperts: 4 });
    expect(t.artifactsDir).toBe(join(tmp, "data", "flashchat", "models", "mlx-community--Qwen3.5-397B-A17B-4bit"));
    expect(resolveModelTarget(await config()).entry?.id).toBe("qwen3.5-397b");
  });

  test("any other repo is a Hub model described later from its config.json", async () => {
    const t = resolveModelTarget(await config({ MODEL_REPO: "someone/Qwen3.5-MoE-tiny" }));
    expect(t).toMatchObject({ kind: "hub", repo: "someone/Qwen3.5-MoE-tiny", entry: undefined, activeExperts: null });
  });

  test("a folder is a local checkpoint", async () => {
    const t = resolveModelTarget(await config({ MODEL_REPO: FIXTURE }));
    expect(t).toMatchObject({ kind: "local", repo: FIXTURE, checkpointDir: FIXTURE });
    const missing = await config({ MODEL_REPO: "./no-such-folder" });
    expect(() => resolveModelTarget(missing)).toThrow(`model folder not found: ${resolve("no-such-folder")}`);
  });

  test("QUANTIZATION=2bit, EXPERTS_DIR and ACTIVE_EXPERTS", async () => {
    expect(resolveModelTarget(await config({ MODEL_REPO: "demo", QUANTIZATION: "2bit" })).expertsDir).toEndWith("/models/demo/packed_experts_2bit");
    mkdirSync(join(tmp, "fast"), { recursive: true });
    expect(resolveModelTarget(await config({ MODEL_REPO: "demo", EXPERTS_DIR: join(tmp, "fast") })).expertsDir).toBe(join(tmp, "fast"));
    expect(resolveModelTarget(await config({ MODEL_REPO: "demo", ACTIVE_EXPERTS: "3" })).activeExperts).toBe(3);
  });

  test("a command's --model replaces MODEL_REPO, and MODEL_PATH (the checkpoint of MODEL_REPO) is dropped for it", async () => {
    const cfg = await config({ MODEL_REPO: "qwen3.5-397b", MODEL_PATH: FIXTURE });
    expect(resolveModelTarget(cfg)).toMatchObject({ kind: "local", checkpointDir: FIXTURE });
    expect(resolveModelTarget(cfg, "demo")).toMatchObject({ id: "demo", kind: "demo", checkpointDir: join(tmp, "data", "flashchat", "checkpoints", "demo") });
    expect(resolveModelTarget(cfg, "someone/other")).toMatchObject({ kind: "hub", repo: "someone/other", checkpointDir: "" });
    // the same model as MODEL_REPO keeps MODEL_PATH
    expect(resolveModelTarget(cfg, "qwen3.5-397b").checkpointDir).toBe(FIXTURE);
  });

  test("a repo's checkpoint is its snapshot in the Hugging Face cache", async () => {
    const cache = join(tmp, "cache", "huggingface", "hub");
    const snap = join(cache, "models--someone--cached", "snapshots", "abc");
    mkdirSync(snap, { recursive: true });
    const cfg = await config({ MODEL_REPO: "someone/cached" });
    expect(cfg.modelPath).toBe(""); // config keeps the plain value; lib/model finds the folder
    expect(resolveModelTarget(cfg)).toMatchObject({ kind: "hub", checkpointDir: snap });
  });

  test("an unknown id says what is accepted", async () => {
    let err: unknown;
    try {
      resolveModelTarget(await config({ MODEL_REPO: "dem" }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toBe('unknown model "dem"');
    expect((err as UserError).hint).toContain("did you mean demo?");
  });
});

describe("serverSampling", () => {
  test("the registry's recommended sampling when TEMPERATURE / TOP_P are left at their defaults", async () => {
    const c = await config({ MODEL_REPO: "qwen3.6-35b" });
    const t = resolveModelTarget(c);
    expect(t.sampling?.topP).toBe(0.8);
    expect(serverSampling(c, t)).toEqual({ temperature: t.sampling!.temperature, topP: 0.8 });
  });
  test("the user's TEMPERATURE / TOP_P win over the model's", async () => {
    const c = await config({ MODEL_REPO: "qwen3.6-35b", TEMPERATURE: "0.2", TOP_P: "0.5" });
    expect(serverSampling(c, resolveModelTarget(c))).toEqual({ temperature: 0.2, topP: 0.5 });
  });
});

describe("requestSampling", () => {
  test("a request carries TEMPERATURE / TOP_P only when the user set them", async () => {
    expect(requestSampling(await config({ MODEL_REPO: "qwen3.6-35b" }))).toEqual({ temperature: undefined, topP: undefined });
    expect(requestSampling(await config({ MODEL_REPO: "qwen3.6-35b", TOP_P: "0.5" }))).toEqual({ temperature: undefined, topP: 0.5 });
  });
});
