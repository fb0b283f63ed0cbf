// Checkpoint description: config.json + tensor index -> the engine's config, the dense tensors to extract and the
// expert tensors to pack, for the two source formats (MLX affine-quantized; Hugging Face bf16, quantized by us).
import { existsSync, readFileSync } from "node:fs";
import { join } from "pathe";
import { UserError } from "../errors.ts";
import { DTYPE_BYTES, elementCount, loadTensorIndex, type TensorIndex, type TensorInfo } from "./safetensors.ts";

export type SourceFormat = "mlx" | "hf-bf16";

export const SUPPORTED_MODEL_TYPES = ["qwen3_5_moe", "qwen3_5_moe_text", "qwen3_next"] as const;
const SUPPORTED_HINT = `supported: Qwen3.5-MoE / Qwen3-Next family (model_type ${SUPPORTED_MODEL_TYPES.join(", ")}), as MLX affine-quantized (mlx-community) or Hugging Face bf16 safetensors`;

/** The dimensions of a text model of the family, described once (names as in config.json). */
export const MODEL_DIM_KEYS = [
  "vocab_size",
  "hidden_size",
  "num_hidden_layers",
  "num_attention_heads",
  "num_key_value_heads",
  "head_dim",
  "linear_num_key_heads",
  "linear_num_value_heads",
  "linear_key_head_dim",
  "linear_value_head_dim",
  "linear_conv_kernel_dim",
  "num_experts",
  "num_experts_per_tok",
  "moe_intermediate_size",
  "shared_expert_intermediate_size",
] as const;

export type ModelDims = Record<(typeof MODEL_DIM_KEYS)[number], number>;

/** Just the dimension fields of `o`. */
export const pickModelDims = (o: ModelDims): ModelDims => Object.fromEntries(MODEL_DIM_KEYS.map((k) => [k, o[k]])) as ModelDims;

/** The architecture config the engine needs (model_weights.json "config"), every field present. */
export interface EngineConfig extends ModelDims {
  model_type: string;
  layer_types: ("linear_attention" | "full_attention")[];
  norm_topk_prob: boolean;
  rms_norm_eps: number;
  rope_theta: number;
  partial_rotary_factor: number;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  eos_token_id: number[];
  bos_token_id: number | null;
}

export interface QuantParams {
  bits: number;
  groupSize: number;
}

export type Projection = "gate_proj" | "up_proj" | "down_proj";
export const PROJECTIONS: readonly Projection[] = ["gate_proj", "up_proj", "down_proj"];

/** Where one projection of every expert of one layer comes from. */
export type ProjectionSource =
  /** MLX: stacked [E, rows, cols*bits/32] codes + [E, rows, cols/gs] scales and biases; expert e is a contiguous slice of each. */
  | { kind: "mlx"; weight: TensorInfo; scales: TensorInfo; biases: TensorInfo; bits: number; groupSize: number }
  /** HF fused: [E, R, cols] float tensor; this projection is rows [rowStart, rowStart + rows) of each expert. */
  | { kind: "hf-stacked"; tensor: TensorInfo; rowStart: number }
  /** HF per expert: one [rows, cols] float tensor per expert. */
  | { kind: "hf-per-expert"; tensors: TensorInfo[] };

export interface ExpertLayer {
  layer: number;
  /** Logical shapes: gate/up [moe_intermediate, hidden], down [hidden, moe_intermediate]. */
  shapes: Record<Projection, [number, number]>;
  sources: Record<Projection, ProjectionSource>;
}

/** How one dense output tensor is produced. */
export type DenseSource =
  | { kind: "copy"; src: TensorInfo }
  /** part of our affine quantization of a float source matrix */
  | { kind: "quantize"; src: TensorInfo; part: "weight" | "scales" | "biases"; rows: number; cols: number; bits: number; groupSize: number }
  /** zero-centred RMSNorm weight: 1 + w, written as F32 */
  | { kind: "plus-one"; src: TensorInfo };

export interface DenseTensor {
  name: string;
  dtype: string;
  shape: number[];
  size: number;
  bits?: number;
  groupSize?: number;
  source: DenseSource;
}

export interface Checkpoint {
  dir: string;
  format: SourceFormat;
  config: EngineConfig;
  /** MLX: the checkpoint's default quantization. HF: null (we choose at extraction). */
  quant: QuantParams | null;
  /** Per-module overrides, keyed by canonical module path (no `.weight`). MLX only. */
  quantOverrides: Map<string, QuantParams>;
  /** Source tensors of the text model under canonical names (vision and MTP tensors dropped). */
  tensors: Map<string, TensorInfo>;
  index: TensorIndex;
}

// ---------------------------------------------------------------------------------------------
// names

const SKIP_PREFIXES = ["vision_tower.", "visual.", "model.visual.", "mtp.", "model.mtp.", "audio_tower."];

/** Checkpoint tensor name -> the name the engine uses, or null for tensors it never reads (vision, MTP). */
export function canonicalName(name: string): string | null {
  if (SKIP_PREFIXES.some((p) => name.startsWith(p))) return null;
  if (name.startsWith("model.language_model.")) return `model.${name.slice("model.language_model.".length)}`;
  if (name.startsWith("language_model.")) return canonicalName(name.slice("language_model.".length));
  return name;
}

const MLX_EXPERT = /^model\.layers\.(\d+)\.mlp\.switch_mlp\.(gate_proj|up_proj|down_proj)\.(weight|scales|biases)$/;
const HF_EXPERT_FUSED = /^model\.layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)$/;
const HF_EXPERT_SPLIT = /^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$/;
const ZERO_CENTRED_NORM = /(^model\.norm\.weight$)|(\.(input_layernorm|post_attention_layernorm|q_norm|k_norm)\.weight$)/;
const ROUTER = /\.mlp\.(gate|shared_expert_gate)\.weight$/;

export const isExpertTensor = (name: string) => MLX_EXPERT.test(name) || HF_EXPERT_FUSED.test(name) || HF_EXPERT_SPLIT.test(name);

/** Compare names with numeric segments as numbers (layers.2 before layers.10). */
export function compareNames(a: string, b: string): number {
  const pa = a.split(".");
  const pb = b.split(".");
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny) return Number(x) - Number(y);
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

// ---------------------------------------------------------------------------------------------
// config

function readJson(path: string): Record<string, any> {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new UserError(`no config.json in ${join(path, "..")}`, "is this a checkpoint folder (config.json + *.safetensors)?");
    throw new UserError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** config.json (MLX VLM conversions nest the text model under text_config) -> the engine's config. */
export function resolveEngineConfig(raw: Record<string, any>, generation?: Record<string, any>): EngineConfig {
  const t: Record<string, any> = raw.text_config ? { ...raw, ...raw.text_config } : raw;
  const modelType = String(t.model_type ?? raw.model_type ?? "");
  if (!SUPPORTED_MODEL_TYPES.includes(modelType as never) && !SUPPORTED_MODEL_TYPES.includes(raw.model_type))
    throw new UserError(`unsupported architecture: model_type ${JSON.stringify(modelType || raw.model_type)}`, SUPPORTED_HINT);
  const need = (k: string): number => {
    const v = t[k];
    if (typeof v !== "number") throw new UserError(`config.json: ${k} is missing or not a number`, SUPPORTED_HINT);
    return v;
  };
  const n = need("num_hidden_layers");
  const interval = t.full_attention_interval ?? 4;
  const layerTypes: EngineConfig["layer_types"] = Array.isArray(t.layer_types)
    ? t.layer_types
    : Array.from({ length: n }, (_, i) => ((i + 1) % interval === 0 ? "full_attention" : "linear_attention"));
  if (layerTypes.length !== n) throw new UserError(`config.json: layer_types has ${layerTypes.length} entries for ${n} layers`);
  const rope = t.rope_parameters ?? t.rope_scaling ?? {};
  const eosRaw = t.eos_token_id ?? raw.eos_token_id ?? generation?.eos_token_id;
  const eos = eosRaw == null ? [] : Array.isArray(eosRaw) ? eosRaw : [eosRaw];
  const heads = need("num_attention_heads");
  const hidden = need("hidden_size");
  const moeI = need("moe_intermediate_size");
  return {
    model_type: modelType,
    vocab_size: need("vocab_size"),
    hidden_size: hidden,
    num_hidden_layers: n,
    layer_types: layerTypes,
    num_attention_heads: heads,
    num_key_value_heads: t.num_key_value_heads ?? heads,
    head_dim: t.head_dim ?? hidden / heads,
    linear_num_key_heads: need("linear_num_key_heads"),
    linear_num_value_heads: need("linear_num_value_heads"),
    linear_key_head_dim: need("linear_key_head_dim"),
    linear_value_head_dim: need("linear_value_head_dim"),
    linear_conv_kernel_dim: t.linear_conv_kernel_dim ?? 4,
    num_experts: need("num_experts"),
    num_experts_per_tok: need("num_experts_per_tok"),
    moe_intermediate_size: moeI,
    shared_expert_intermediate_size: t.shared_expert_intermediate_size ?? moeI,
    norm_topk_prob: t.norm_topk_prob ?? true,
    rms_norm_eps: t.rms_norm_eps ?? 1e-6,
    rope_theta: rope.rope_theta ?? t.rope_theta ?? 10000000,
    partial_rotary_factor: rope.partial_rotary_factor ?? t.partial_rotary_factor ?? 0.25,
    max_position_embeddings: t.max_position_embeddings ?? 262144,
    tie_word_embeddings: t.tie_word_embeddings ?? raw.tie_word_embeddings ?? false,
    eos_token_id: eos,
    bos_token_id: t.bos_token_id ?? raw.bos_token_id ?? generation?.bos_token_id ?? null,
  };
}

function parseQuantization(raw: Record<string, any>): { quant: QuantParams | null; overrides: Map<string, QuantParams> } {
  const q = raw.quantization ?? raw.quantization_config;
  const overrides = new Map<string, QuantParams>();
  if (!q || typeof q !== "object") return { quant: null, overrides };
  if (q.quant_method && q.quant_method !== "mlx")
    throw new UserError(`unsupported quantization: quant_method ${JSON.stringify(q.quant_method)}`, SUPPORTED_HINT);
  if (q.mode && q.mode !== "affine") throw new UserError(`unsupported MLX quantization mode ${JSON.stringify(q.mode)} (only affine)`, SUPPORTED_HINT);
  if (typeof q.bits !== "number" || typeof q.group_size !== "number") return { quant: null, overrides };
  for (const [k, v] of Object.entries(q)) {
    if (!v || typeof v !== "object") continue;
    const name = canonicalName(k);
    const o = v as { bits?: number; group_size?: number };
    if (name) overrides.set(name, { bits: o.bits ?? q.bits, groupSize: o.group_size ?? q.group_size });
  }
  return { quant: { bits: q.bits, groupSize: q.group_size }, overrides };
}

/** Read config.json and every safetensors header of a checkpoint folder (an absolute path) and describe it. */
export function loadCheckpoint(dir: string): Checkpoint {
  if (!existsSync(dir)) throw new UserError(`checkpoint folder not found: ${dir}`);
  const raw = readJson(join(dir, "config.json"));
  const genPath = join(dir, "generation_config.json");
  const generation = existsSync(genPath) ? readJson(genPath) : undefined;
  const config = resolveEngineConfig(raw, generation);
  const { quant, overrides } = parseQuantization(raw);
  const index = loadTensorIndex(dir);
  const tensors = new Map<string, TensorInfo>();
  for (const [name, t] of index.tensors) {
    const c = canonicalName(name);
    if (c) tensors.set(c, t);
  }
  const hasPacked = [...tensors.values()].some((t) => t.dtype === "U32");
  let format: SourceFormat;
  if (quant && hasPacked) format = "mlx";
  else if (!hasPacked) {
    const bad = [...tensors.values()].find((t) => !["BF16", "F16", "F32"].includes(t.dtype));
    if (bad) throw new UserError(`unsupported tensor ${bad.name}: dtype ${bad.dtype} in an unquantized checkpoint`, SUPPORTED_HINT);
    format = "hf-bf16";
  } else throw new UserError(`checkpoint ${dir} holds packed (U32) tensors but config.json has no MLX quantization block`, SUPPORTED_HINT);
  if (!tensors.has("model.embed_tokens.weight"))
    throw new UserError(`checkpoint ${dir} has no embedding (model.embed_tokens.weight): not a text model of this family`, SUPPORTED_HINT);
  return { dir, format, config, quant, quantOverrides: overrides, tensors, index };
}

// ---------------------------------------------------------------------------------------------
// quantized modules

/** Bits and group size of the MLX-quantized module M (given M.weight/M.scales), checked against the shapes. */
export function resolveModuleQuant(ckpt: Checkpoint, module: string): QuantParams {
  const w = ckpt.tensors.get(`${module}.weight`)!;
  const s = ckpt.tensors.get(`${module}.scales`)!;
  const b = ckpt.tensors.get(`${module}.biases`);
  const q = ckpt.quantOverrides.get(module) ?? ckpt.quant!;
  const packed = w.shape.at(-1)!;
  const groups = s.shape.at(-1)!;
  const sameLead = w.shape.length === s.shape.length && w.shape.slice(0, -1).every((d, i) => d === s.shape[i]);
  if (w.dtype !== "U32" || !sameLead || !b || b.shape.join() !== s.shape.join())
    throw new UserError(`tensor ${module}: quantized weight/scales/biases do not fit together (${w.dtype} ${JSON.stringify(w.shape)}, scales ${JSON.stringify(s.shape)}, biases ${JSON.stringify(b?.shape)})`);
  if ((packed * 32) / q.bits !== groups * q.groupSize)
    throw new UserError(`tensor ${module}.weight: ${packed} packed columns and ${groups} groups do not match ${q.bits}-bit, group ${q.groupSize} (config.json quantization)`);
  if (!["BF16", "F16"].includes(s.dtype) || s.dtype !== b.dtype)
    throw new UserError(`tensor ${module}.scales: dtype ${s.dtype} (expected BF16 or F16, same as biases)`);
  return q;
}

// ---------------------------------------------------------------------------------------------
// dense tensors

export interface DenseOptions {
  /** HF sources: bits of the quantized linears (routers stay 8-bit). Default 4. */
  bits?: number;
  groupSize?: number;
}

/** The non-expert tensors to write into model_weights.bin, in a fixed order. */
export function describeDense(ckpt: Checkpoint, opts: DenseOptions = {}): DenseTensor[] {
  const out: DenseTensor[] = [];
  const names = [...ckpt.tensors.keys()].filter((n) => !isExpertTensor(n)).sort(compareNames);
  if (ckpt.format === "mlx") {
    for (const name of names) {
      const t = ckpt.tensors.get(name)!;
      const entry: DenseTensor = { name, dtype: t.dtype, shape: t.shape, size: t.size, source: { kind: "copy", src: t } };
      if (name.endsWith(".weight") && ckpt.tensors.has(`${name.slice(0, -7)}.scales`)) {
        const q = resolveModuleQuant(ckpt, name.slice(0, -7));
        entry.bits = q.bits;
        entry.groupSize = q.groupSize;
      }
      out.push(entry);
    }
    return out;
  }
  const bits = opts.bits ?? 4;
  const gs = opts.groupSize ?? 64;
  for (const name of names) {
    const t = ckpt.tensors.get(name)!;
    if (ZERO_CENTRED_NORM.test(name)) {
      out.push({ name, dtype: "F32", shape: t.shape, size: elementCount(t.shape) * 4, source: { kind: "plus-one", src: t } });
    } else if (name.endsWith(".conv1d.weight") && t.shape.length === 3 && t.shape[1] === 1) {
      // torch [C, 1, K] -> MLX [C, K, 1]: the same bytes in the same order
      out.push({ name, dtype: t.dtype, shape: [t.shape[0]!, t.shape[2]!, 1], size: t.size, source: { kind: "copy", src: t } });
    } else if (name.endsWith(".weight") && t.shape.length === 2 && t.shape[1]! % gs === 0) {
      const b = ROUTER.test(name) ? 8 : bits;
      const [rows, cols] = t.shape as [number, number];
      const m = name.slice(0, -7);
      const g = cols / gs;
      const q = { kind: "quantize", src: t, rows, cols, bits: b, groupSize: gs } as const;
      out.push({ name: `${m}.biases`, dtype: "BF16", shape: [rows, g], size: rows * g * 2, source: { ...q, part: "biases" } });
      out.push({ name: `${m}.scales`, dtype: "BF16", shape: [rows, g], size: rows * g * 2, source: { ...q, part: "scales" } });
      out.push({ name: `${m}.weight`, dtype: "U32", shape: [rows, (cols * b) / 32], size: (rows * cols * b) / 8, bits: b, groupSize: gs, source: { ...q, part: "weight" } });
    } else {
      out.push({ name, dtype: t.dtype, shape: t.shape, size: t.size, source: { kind: "copy", src: t } });
    }
  }
  return out.sort((a, b) => compareNames(a.name, b.name));
}

// ---------------------------------------------------------------------------------------------
// experts

/** Every MoE layer's expert tensors, checked against the config's dimensions. */
export function describeExperts(ckpt: Checkpoint): ExpertLayer[] {
  const { num_experts: E, hidden_size: H, moe_intermediate_size: I } = ckpt.config;
  const shapes: Record<Projection, [number, number]> = { gate_proj: [I, H], up_proj: [I, H], down_proj: [H, I] };
  const layers = new Map<number, Partial<Record<Projection, ProjectionSource>>>();
  const perExpert = new Map<string, TensorInfo[]>();
  const at = (l: number) => layers.get(l) ?? layers.set(l, {}).get(l)!;
  const checkFloat = (t: TensorInfo, shape: number[]) => {
    if (!["BF16", "F16", "F32"].includes(t.dtype) || t.shape.join() !== shape.join())
      throw new UserError(`tensor ${t.name}: ${t.dtype} ${JSON.stringify(t.shape)}, expected a float tensor of shape ${JSON.stringify(shape)} (num_experts ${E}, hidden ${H}, moe_intermediate ${I})`);
  };
  for (const [name, t] of ckpt.tensors) {
    let m = MLX_EXPERT.exec(name);
    if (m) {
      if (m[3] !== "weight") continue;
      const proj = m[2] as Projection;
      const module = name.slice(0, -7);
      const q = resolveModuleQuant(ckpt, module);
      const [rows, cols] = shapes[proj];
      const want = [E, rows, (cols * q.bits) / 32];
      if (t.shape.join() !== want.join())
        throw new UserError(`tensor ${t.name}: shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(want)} for ${E} experts of [${rows}, ${cols}] at ${q.bits} bits`);
      at(Number(m[1]))[proj] = {
        kind: "mlx", weight: t, scales: ckpt.tensors.get(`${module}.scales`)!, biases: ckpt.tensors.get(`${module}.biases`)!, bits: q.bits, groupSize: q.groupSize,
      };
      continue;
    }
    m = HF_EXPERT_FUSED.exec(name);
    if (m) {
      const l = Number(m[1]);
      if (m[2] === "gate_up_proj") {
        checkFloat(t, [E, 2 * I, H]);
        at(l).gate_proj = { kind: "hf-stacked", tensor: t, rowStart: 0 };
        at(l).up_proj = { kind: "hf-stacked", tensor: t, rowStart: I };
      } else {
        checkFloat(t, [E, H, I]);
        at(l).down_proj = { kind: "hf-stacked", tensor: t, rowStart: 0 };
      }
      continue;
    }
    m = HF_EXPERT_SPLIT.exec(name);
    if (m) {
      const key = `${m[1]}.${m[3]}`;
      const list = perExpert.get(key) ?? perExpert.set(key, []).get(key)!;
      checkFloat(t, shapes[m[3] as Projection]);
      list[Number(m[2])] = t;
    }
  }
  for (const [key, list] of perExpert) {
    const [l, proj] = key.split(".") as [string, Projection];
    for (let e = 0; e < E; e++) if (!list[e]) throw new UserError(`tensor model.layers.${l}.mlp.experts.${e}.${proj}.weight is missing (num_experts is ${E})`);
    at(Number(l))[proj] = { kind: "hf-per-expert", tensors: list };
  }
  const result: ExpertLayer[] = [];
  for (const l of [...layers.keys()].sort((a, b) => a - b)) {
    const s = layers.get(l)!;
    for (const p of PROJECTIONS) if (!s[p]) throw new UserError(`layer ${l}: expert ${p} tensors are missing`, `checkpoint: ${ckpt.dir}`);
    if (l >= ckpt.config.num_hidden_layers) throw new UserError(`expert tensors for layer ${l}, but the model has ${ckpt.config.num_hidden_layers} layers`);
    result.push({ layer: l, shapes, sources: s as Record<Projection, ProjectionSource> });
  }
  return result;
}

export const dtypeBytes = (dtype: string) => DTYPE_BYTES[dtype]!;
