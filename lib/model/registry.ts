// The models flashchat knows (dimensions, sizes, RAM, active experts, sampling, reply length), their sizes
// computed from the dimensions, and the dimensions read from a checkpoint's config.json.
import { type EngineConfig, type ModelDims, pickModelDims, resolveEngineConfig, type SourceFormat } from "./checkpoint.ts";
import { TEST_MODEL_PRESETS } from "./test-model.ts";

/** The dimensions sizes are computed from (names as in config.json / model_weights.json). */
export type ArchDims = ModelDims &
  Pick<EngineConfig, "model_type" | "tie_word_embeddings"> & {
    /** every Nth layer is full attention (the rest linear); 4 in this family */
    full_attention_interval: number;
  };

export interface Sampling {
  temperature: number;
  topP: number;
  topK?: number;
  minP?: number;
  presencePenalty?: number;
}

export interface ModelEntry {
  /** What `--model` accepts (besides the repo itself). */
  id: string;
  title: string;
  /** Hugging Face repo, or "demo" for the generated model. */
  repo: string;
  /** hub: downloaded; generated: made locally by our tools, no network. */
  origin: "hub" | "generated";
  format: SourceFormat;
  /** Bits of the prepared experts (4; 2 more with QUANTIZATION=2bit). For hf-bf16 sources: the bits we quantize to. */
  bits: number;
  arch: ArchDims;
  /** Experts per token flashchat uses by default (ACTIVE_EXPERTS overrides); the model's own is arch.num_experts_per_tok. */
  activeExperts: number;
  sampling: Sampling;
  /** Longest reply by default when MAX_TOKENS is not set (the demo's random text never ends by itself). */
  maxTokens?: number;
  /** Native context length (config.json max_position_embeddings), known before the download. */
  contextLength?: number;
  description: string;
}

/** Qwen3.5/3.6 recommended non-thinking sampling (model cards): T 0.7, top-p 0.8, top-k 20. */
const QWEN_SAMPLING: Sampling = { temperature: 0.7, topP: 0.8, topK: 20, minP: 0, presencePenalty: 1.5 };

export const MODELS: readonly ModelEntry[] = [
  {
    id: "qwen3.5-397b",
    title: "Qwen3.5-397B-A17B",
    repo: "mlx-community/Qwen3.5-397B-A17B-4bit",
    origin: "hub",
    format: "mlx",
    bits: 4,
    arch: {
      model_type: "qwen3_5_moe",
      vocab_size: 248320,
      hidden_size: 4096,
      num_hidden_layers: 60,
      full_attention_interval: 4,
      num_attention_heads: 32,
      num_key_value_heads: 2,
      head_dim: 256,
      linear_num_key_heads: 16,
      linear_num_value_heads: 64,
      linear_key_head_dim: 128,
      linear_value_head_dim: 128,
      linear_conv_kernel_dim: 4,
      num_experts: 512,
      num_experts_per_tok: 10,
      moe_intermediate_size: 1024,
      shared_expert_intermediate_size: 1024,
      tie_word_embeddings: false,
    },
    // the original engine's setting: 4 of 10 experts keeps quality and cuts SSD reads by 60%
    activeExperts: 4,
    sampling: QWEN_SAMPLING,
    contextLength: 262144,
    description: "the flagship: 397B parameters, 17B active; MLX 4-bit from mlx-community",
  },
  {
    id: "qwen3.6-35b",
    title: "Qwen3.6-35B-A3B",
    repo: "Qwen/Qwen3.6-35B-A3B",
    origin: "hub",
    format: "hf-bf16",
    bits: 4,
    arch: {
      model_type: "qwen3_5_moe",
      vocab_size: 248320,
      hidden_size: 2048,
      num_hidden_layers: 40,
      full_attention_interval: 4,
      num_attention_heads: 16,
      num_key_value_heads: 2,
      head_dim: 256,
      linear_num_key_heads: 16,
      linear_num_value_heads: 32,
      linear_key_head_dim: 128,
      linear_value_head_dim: 128,
      linear_conv_kernel_dim: 4,
      num_experts: 256,
      num_experts_per_tok: 8,
      moe_intermediate_size: 512,
      shared_expert_intermediate_size: 512,
      tie_word_embeddings: false,
    },
    activeExperts: 8,
    sampling: QWEN_SAMPLING,
    contextLength: 262144,
    description: "35B parameters, 3B active; Hugging Face bf16, quantized to 4-bit by flashchat",
  },
  {
    id: "qwen3-next-80b",
    title: "Qwen3-Next-80B-A3B-Instruct",
    repo: "mlx-community/Qwen3-Next-80B-A3B-Instruct-4bit",
    origin: "hub",
    format: "mlx",
    bits: 4,
    arch: {
      model_type: "qwen3_next",
      vocab_size: 151936,
      hidden_size: 2048,
      num_hidden_layers: 48,
      full_attention_interval: 4,
      num_attention_heads: 16,
      num_key_value_heads: 2,
      head_dim: 256,
      linear_num_key_heads: 16,
      linear_num_value_heads: 32,
      linear_key_head_dim: 128,
      linear_value_head_dim: 128,
      linear_conv_kernel_dim: 4,
      num_experts: 512,
      num_experts_per_tok: 10,
      moe_intermediate_size: 512,
      shared_expert_intermediate_size: 512,
      tie_word_embeddings: false,
    },
    activeExperts: 10,
    sampling: { temperature: 0.7, topP: 0.8, topK: 20, minP: 0 },
    contextLength: 262144,
    description: "80B parameters, 3B active; MLX 4-bit from mlx-community",
  },
  {
    id: "demo",
    title: "demo (tiny, random weights)",
    repo: "demo",
    origin: "generated",
    format: "mlx",
    bits: 4,
    // the generator's demo preset (lib/model/test-model.ts)
    arch: demoArch(),
    activeExperts: TEST_MODEL_PRESETS.demo!.num_experts_per_tok,
    sampling: { temperature: 0.7, topP: 0.9 },
    maxTokens: 200,
    description: "a tiny model of the real architecture with random weights, generated locally: replies are random text",
  },
];

function demoArch(): ArchDims {
  const d = TEST_MODEL_PRESETS.demo!;
  return { model_type: "qwen3_5_moe", ...pickModelDims(d), full_attention_interval: d.full_attention_interval, tie_word_embeddings: false };
}

export const DEMO_ID = "demo";
export const DEMO_NOTICE = "the demo model has random weights: its replies are random text, not answers";

/** A registry id, a registry model's repo (case-insensitive), or undefined. */
export function findModel(idOrRepo: string): ModelEntry | undefined {
  const key = idOrRepo.trim().toLowerCase();
  return MODELS.find((m) => m.id === key || m.repo.toLowerCase() === key);
}

// ---------------------------------------------------------------------------------------------
// sizes

const GROUP = 64;
const align = (n: number, a: number) => Math.ceil(n / a) * a;
/** Bytes of an MLX affine-quantized [rows, cols] matrix: packed codes + bf16 scales and biases. */
const quantBytes = (rows: number, cols: number, bits: number) => (rows * cols * bits) / 8 + 2 * rows * Math.ceil(cols / GROUP) * 2;

export interface SizeEstimate {
  /** model_weights.bin */
  denseBytes: number;
  /** one expert in packed_experts/ (components 64-aligned, rounded up to 4096) */
  expertBytes: number;
  /** all of packed_experts/ */
  expertsBytes: number;
  /** all of packed_experts_2bit/ */
  experts2bitBytes: number;
  /** the checkpoint's weight files (what a download fetches, give or take vision and metadata) */
  checkpointBytes: number;
  /** parameters of the text model */
  params: number;
  /** smallest RAM that runs it: dense weights + working memory */
  ramMinBytes: number;
  /** RAM for good speed: also room for the page cache to keep the hot experts */
  ramRecommendedBytes: number;
}

/** Packed size of one expert at `bits` (the layout of native/ARTIFACTS.md). */
export function expertPackedBytes(hidden: number, inter: number, bits: number): number {
  let pos = 0;
  for (const [rows, cols] of [[inter, hidden], [inter, hidden], [hidden, inter]] as const) {
    for (const size of [(rows * cols * bits) / 8, rows * (cols / GROUP) * 2, rows * (cols / GROUP) * 2]) pos = align(pos, 64) + size;
  }
  return align(pos, 4096);
}

/** Sizes on disk and RAM, computed from the dimensions (estimates: exact figures come from the files). */
export function estimateSizes(arch: ArchDims, opts: { format: SourceFormat; bits?: number }): SizeEstimate {
  const bits = opts.bits ?? 4;
  const H = arch.hidden_size;
  const L = arch.num_hidden_layers;
  const nFull = Math.floor(L / arch.full_attention_interval);
  const nLinear = L - nFull;
  const q = arch.num_attention_heads * arch.head_dim;
  const kv = arch.num_key_value_heads * arch.head_dim;
  const kDim = arch.linear_num_key_heads * arch.linear_key_head_dim;
  const vDim = arch.linear_num_value_heads * arch.linear_value_head_dim;
  const conv = 2 * kDim + vDim;
  const S = arch.shared_expert_intermediate_size;
  // quantized matrices [rows, cols] of one layer kind, plus small unquantized tensors (elements)
  const fullMats: Array<[number, number]> = [[2 * q, H], [kv, H], [kv, H], [H, q]];
  const linearMats: Array<[number, number]> = [[conv, H], [vDim, H], [arch.linear_num_value_heads, H], [arch.linear_num_value_heads, H], [H, vDim]];
  const moeMats: Array<[number, number]> = [[S, H], [S, H], [H, S]];
  const routerMats: Array<[number, number]> = [[arch.num_experts, H], [1, H]];
  const smallFull = 2 * H + 2 * arch.head_dim;
  const smallLinear = 2 * H + conv * arch.linear_conv_kernel_dim + 2 * arch.linear_num_value_heads + arch.linear_value_head_dim;
  const embedMats: Array<[number, number]> = arch.tie_word_embeddings ? [[arch.vocab_size, H]] : [[arch.vocab_size, H], [arch.vocab_size, H]];
  const sum = (mats: Array<[number, number]>, f: (r: number, c: number) => number) => mats.reduce((s, [r, c]) => s + f(r, c), 0);

  const params =
    sum(embedMats, (r, c) => r * c) +
    nFull * (sum(fullMats, (r, c) => r * c) + smallFull) +
    nLinear * (sum(linearMats, (r, c) => r * c) + smallLinear) +
    L * (sum(moeMats, (r, c) => r * c) + sum(routerMats, (r, c) => r * c) + 3 * arch.num_experts * H * arch.moe_intermediate_size) +
    H;
  const denseBytes =
    sum(embedMats, (r, c) => quantBytes(r, c, bits)) +
    nFull * (sum(fullMats, (r, c) => quantBytes(r, c, bits)) + smallFull * 2) +
    nLinear * (sum(linearMats, (r, c) => quantBytes(r, c, bits)) + smallLinear * 2) +
    L * (sum(moeMats, (r, c) => quantBytes(r, c, bits)) + sum(routerMats, (r, c) => quantBytes(r, c, 8))) +
    H * 2;
  const expertBytes = expertPackedBytes(H, arch.moe_intermediate_size, bits);
  const expertsBytes = L * arch.num_experts * expertBytes;
  const experts2bitBytes = L * arch.num_experts * expertPackedBytes(H, arch.moe_intermediate_size, 2);
  const rawExperts = L * arch.num_experts * 3 * quantBytes(arch.moe_intermediate_size, H, bits);
  const checkpointBytes = opts.format === "hf-bf16" ? params * 2 : denseBytes + rawExperts;
  const GB = 1e9;
  // working memory: KV cache, recurrent state, scratch, the runtime; the page cache wants ~15% of the experts
  const workBytes = Math.min(2 * GB, 0.25 * GB + 0.3 * denseBytes);
  const ramMinBytes = Math.ceil((denseBytes + workBytes) / GB) * GB;
  const good = denseBytes + 0.15 * expertsBytes + Math.min(4 * GB, 0.5 * GB + denseBytes);
  const ramRecommendedBytes = good > 8 * GB ? Math.ceil(good / (8 * GB)) * 8 * GB : Math.ceil(good / GB) * GB;
  return { denseBytes, expertBytes, expertsBytes, experts2bitBytes, checkpointBytes, params, ramMinBytes, ramRecommendedBytes };
}

/** Dimensions from a checkpoint's config.json (read as the engine reads it: resolveEngineConfig). */
export function archFromConfig(raw: Record<string, any>): ArchDims {
  const c = resolveEngineConfig(raw);
  const firstFull = c.layer_types.indexOf("full_attention");
  return { model_type: c.model_type, ...pickModelDims(c), full_attention_interval: firstFull >= 0 ? firstFull + 1 : 4, tie_word_embeddings: c.tie_word_embeddings };
}

/** Source format of a checkpoint from its config.json: a quantization block means MLX. */
export const formatFromConfig = (raw: Record<string, any>): SourceFormat =>
  raw.quantization || raw.quantization_config?.bits ? "mlx" : "hf-bf16";
