// `flashchat models show NAME`: one model in full — architecture, sizes (estimated and on disk), paths,
// quantization, context and recommended sampling — from the registry, its prepared manifest or its config.json.
import { existsSync, readFileSync } from "node:fs";
import { join } from "pathe";
import type { ResolvedConfig } from "../config/schema.ts";
import { formatBytes, renderTable } from "../format.ts";
import { inspectArtifacts } from "../model/artifacts.ts";
import { hfRepoFolderName } from "../model/hf-cache.ts";
import { type ArchDims, archFromConfig, estimateSizes, formatFromConfig, type Sampling, type SizeEstimate } from "../model/registry.ts";
import { resolveModelTarget } from "../model/target.ts";
import { sizeOnDisk } from "./remove.ts";

export interface ModelInfo {
  id: string;
  title: string;
  kind: "hub" | "local" | "demo";
  repo: string;
  known: boolean;
  description: string | null;
  /** Dimensions: the registry's, else the prepared manifest's, else the checkpoint's config.json; null: none known yet. */
  architecture: (ArchDims & { num_layers_full_attention: number; num_layers_linear_attention: number }) | null;
  quantization: { source: string | null; bits: number | null; groupSize: number; setting: string; prepared4bit: boolean; prepared2bit: boolean };
  /** Longest context the model supports (max_position_embeddings); null when not known yet. */
  contextMax: number | null;
  /** CONTEXT_SIZE (0 = the model's maximum, lowered to what fits). */
  contextSetting: number;
  activeExperts: number | null;
  sampling: Sampling | null;
  maxTokens: number;
  paths: { checkpoint: string; hfCacheEntry: string | null; artifacts: string; experts: string };
  /** Estimated from the dimensions (null without them). */
  sizes: SizeEstimate | null;
  /** What is on disk now (bytes). */
  onDisk: { download: number; weights: number; experts: number; experts2bit: number };
}

const readJson = (file: string): Record<string, any> | undefined => {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
};

type InfoConfig = Pick<ResolvedConfig, "modelRepo" | "modelPath" | "artifactsDir" | "expertsDir" | "quantization" | "activeExperts" | "maxTokens" | "contextSize" | "paths">;

export function loadModelInfo(config: InfoConfig, name: string): ModelInfo {
  const t = resolveModelTarget(config, name);
  const art = inspectArtifacts(t.artifactsDir);
  const manifest = readJson(join(t.artifactsDir, "model_weights.json"));
  const ckptConfig = t.checkpointDir ? readJson(join(t.checkpointDir, "config.json")) : undefined;
  const raw = manifest?.config ?? ckptConfig;
  let arch: ArchDims | null = t.entry?.arch ?? null;
  if (!arch && raw) {
    try {
      arch = archFromConfig(raw);
    } catch {
      arch = null; // not a model of this family: shown without dimensions
    }
  }
  const format = t.entry?.format ?? (manifest?.source?.format as "mlx" | "hf-bf16" | undefined) ?? (ckptConfig ? formatFromConfig(ckptConfig) : undefined);
  const textConfig = (raw?.text_config ?? raw) as Record<string, any> | undefined;
  const contextMax = typeof textConfig?.max_position_embeddings === "number" ? textConfig.max_position_embeddings : (t.entry?.contextLength ?? null);
  const hfEntry = t.kind === "hub" ? join(config.paths.hfCacheDir, hfRepoFolderName(t.repo)) : null;
  const nFull = arch ? Math.floor(arch.num_hidden_layers / arch.full_attention_interval) : 0;
  return {
    id: t.id,
    title: t.entry?.title ?? t.repo,
    kind: t.kind,
    repo: t.repo,
    known: t.entry !== undefined,
    description: t.entry?.description ?? null,
    architecture: arch ? { ...arch, num_layers_full_attention: nFull, num_layers_linear_attention: arch.num_hidden_layers - nFull } : null,
    quantization: {
      source: format === "mlx" ? "MLX affine (4-bit)" : format === "hf-bf16" ? `bf16, quantized by flashchat to ${t.quantizeBits}-bit` : null,
      bits: art.manifest.bits ?? t.entry?.bits ?? null,
      groupSize: 64,
      setting: t.quantization,
      prepared4bit: art.weightsComplete && art.experts.complete,
      prepared2bit: art.weightsComplete && art.experts2bit.complete,
    },
    contextMax,
    contextSetting: config.contextSize,
    activeExperts: t.activeExperts,
    sampling: t.sampling ?? null,
    maxTokens: t.maxTokens,
    paths: { checkpoint: t.checkpointDir, hfCacheEntry: hfEntry, artifacts: t.artifactsDir, experts: t.expertsDir },
    sizes: arch && format ? estimateSizes(arch, { format, bits: t.entry?.bits }) : null,
    onDisk: {
      download: hfEntry ? sizeOnDisk(hfEntry) : t.kind === "demo" && t.checkpointDir ? sizeOnDisk(t.checkpointDir) : 0,
      weights: art.weights.bytes,
      experts: art.experts.bytes,
      experts2bit: art.experts2bit.bytes,
    },
  };
}

const orDash = (v: unknown) => (v === null || v === undefined || v === "" ? "-" : String(v));

export function renderModelInfo(m: ModelInfo): string {
  const a = m.architecture;
  const s = m.sizes;
  const here = (n: number) => (n ? formatBytes(n) : "none");
  const rows: string[][] = [
    ["model", `${m.id}${m.title !== m.id ? `  ${m.title}` : ""}${m.known ? "" : " (not in the registry)"}`],
    ...(m.description ? [["", m.description]] : []),
    ["source", m.kind === "hub" ? `Hugging Face ${m.repo}` : m.kind === "demo" ? "generated here (random weights)" : `local folder ${m.repo}`],
    [
      "architecture",
      a
        ? `${a.model_type}: ${a.num_hidden_layers} layers (${a.num_layers_linear_attention} linear attention, ${a.num_layers_full_attention} full), hidden ${a.hidden_size}, ${a.num_experts} experts (${a.num_experts_per_tok} per token), expert size ${a.moe_intermediate_size}, vocabulary ${a.vocab_size}`
        : "unknown until downloaded",
    ],
    ...(a ? [["attention", `${a.num_attention_heads} heads (${a.num_key_value_heads} KV) x ${a.head_dim}; linear ${a.linear_num_key_heads}/${a.linear_num_value_heads} heads x ${a.linear_key_head_dim}`]] : []),
    ["parameters", s ? `${(s.params / 1e9).toFixed(s.params < 1e9 ? 3 : 1)} B` : "-"],
    ["quantization", `${orDash(m.quantization.source)}; groups of ${m.quantization.groupSize}; QUANTIZATION ${m.quantization.setting}; prepared: 4-bit ${m.quantization.prepared4bit ? "yes" : "no"}, 2-bit ${m.quantization.prepared2bit ? "yes" : "no"}`],
    ["context", `${m.contextMax === null ? "maximum unknown until downloaded" : `maximum ${m.contextMax} tokens`}; CONTEXT_SIZE ${m.contextSetting || "0 (the maximum, as memory allows)"}`],
    ["experts used", `${orDash(m.activeExperts)} per token (ACTIVE_EXPERTS overrides)`],
    [
      "sampling",
      m.sampling
        ? `recommended: temperature ${m.sampling.temperature}, top-p ${m.sampling.topP}${m.sampling.topK !== undefined ? `, top-k ${m.sampling.topK}` : ""}${m.sampling.minP !== undefined ? `, min-p ${m.sampling.minP}` : ""}${m.sampling.presencePenalty !== undefined ? `, presence penalty ${m.sampling.presencePenalty}` : ""} (used unless TEMPERATURE / TOP_P are set)`
        : "no recommendation: TEMPERATURE / TOP_P",
    ],
    ["max tokens", `${m.maxTokens} per reply`],
    ["sizes", s ? `download ${m.kind === "demo" ? "none" : formatBytes(s.checkpointBytes)}; prepared ${formatBytes(s.denseBytes)} dense + ${formatBytes(s.expertsBytes)} experts (2-bit +${formatBytes(s.experts2bitBytes)}); RAM ${formatBytes(s.ramMinBytes)} min, ${formatBytes(s.ramRecommendedBytes)} good` : "-"],
    ["on disk", `download ${here(m.onDisk.download)}; weights ${here(m.onDisk.weights)}; experts ${here(m.onDisk.experts)}; 2-bit experts ${here(m.onDisk.experts2bit)}`],
    ["checkpoint", m.paths.checkpoint || "not downloaded"],
    ...(m.paths.hfCacheEntry ? [["HF cache", `${m.paths.hfCacheEntry}${existsSync(m.paths.hfCacheEntry) ? "" : " (absent)"}`]] : []),
    ["artifacts", `${m.paths.artifacts}${existsSync(m.paths.artifacts) ? "" : " (absent)"}`],
    ["experts", m.paths.experts],
  ];
  return renderTable(rows);
}
