// What is downloaded and prepared for each model (for `flashchat models` and `status`): no network, headers only.
import { existsSync, readdirSync } from "node:fs";
import { join } from "pathe";
import type { ResolvedConfig } from "../config/schema.ts";
import { findHfSnapshot, hfRepoFolderName } from "../model/hf-cache.ts";
import { inspectArtifacts, resolveModelArtifactsDir } from "../model/artifacts.ts";
import { cachedRepoBytes, checkLocalCheckpoint } from "../model/hub.ts";
import { hasTokenizerFiles } from "./plan.ts";
import { estimateSizes, MODELS, type ModelEntry, type SizeEstimate } from "../model/registry.ts";
import { demoCheckpointDir } from "../model/target.ts";

export interface ModelStatus {
  id: string;
  title: string;
  repo: string;
  /** hub: downloaded from Hugging Face; generated: made locally (the demo). */
  origin: "hub" | "generated";
  format: string;
  /** Whether MODEL_REPO names this model. */
  current: boolean;
  /** The checkpoint is complete on disk (cache snapshot or generated). */
  downloaded: boolean;
  /** Bytes of it on disk (blobs in the cache, partial files included). */
  downloadedBytes: number;
  checkpointDir: string;
  artifactsDir: string;
  /** model_weights + packed_experts complete. */
  prepared: boolean;
  prepared2bit: boolean;
  preparedBytes: number;
  /** Prepared with its tokenizer copied: the download in the Hugging Face cache is no longer needed. */
  downloadDeletable: boolean;
  sizes: SizeEstimate;
  activeExperts: number;
  description: string;
}

function statusOf(config: ResolvedConfig, m: ModelEntry, current: boolean): ModelStatus {
  const checkpointDir = m.origin === "generated" ? demoCheckpointDir(config) : findHfSnapshot(config.paths.hfCacheDir, m.repo);
  const check = checkpointDir ? checkLocalCheckpoint(checkpointDir) : null;
  const artifactsDir = resolveModelArtifactsDir(config, { modelId: m.repo, quantizedBits: m.format === "hf-bf16" ? m.bits : undefined });
  const art = inspectArtifacts(artifactsDir);
  return {
    id: m.id,
    title: m.title,
    repo: m.repo,
    origin: m.origin,
    format: m.format === "mlx" ? "MLX 4-bit" : "HF bf16 -> 4-bit",
    current,
    downloaded: Boolean(check?.ok),
    downloadedBytes: m.origin === "generated" ? (check?.sizeBytes ?? 0) : cachedRepoBytes(config.paths.hfCacheDir, m.repo),
    checkpointDir: check?.ok ? checkpointDir : "",
    artifactsDir,
    prepared: art.weightsComplete && art.experts.complete,
    prepared2bit: art.experts2bit.complete,
    preparedBytes: art.weights.bytes + art.experts.bytes + art.experts2bit.bytes,
    downloadDeletable: m.origin === "hub" && art.weightsComplete && art.experts.complete && hasTokenizerFiles(artifactsDir) && cachedRepoBytes(config.paths.hfCacheDir, m.repo) > 0,
    sizes: estimateSizes(m.arch, { format: m.format, bits: m.bits }),
    activeExperts: m.activeExperts,
    description: m.description,
  };
}

/** Every registry model, plus any other model in the cache or artifacts folder that MODEL_REPO names. */
export function listModelStatus(config: ResolvedConfig): ModelStatus[] {
  const cur = config.modelRepo.toLowerCase();
  return MODELS.map((m) => statusOf(config, m, m.id === cur || m.repo.toLowerCase() === cur));
}

/** Other models prepared in the artifacts folder (not in the registry): folder names. */
export function otherPreparedModels(config: ResolvedConfig): string[] {
  if (!existsSync(config.artifactsDir)) return [];
  const known = new Set(MODELS.map((m) => resolveModelArtifactsDir(config, { modelId: m.repo, quantizedBits: m.format === "hf-bf16" ? m.bits : undefined })));
  return readdirSync(config.artifactsDir)
    .map((n) => join(config.artifactsDir, n))
    .filter((p) => !known.has(p) && existsSync(join(p, "model_weights.json")));
}

/** Other models in the Hugging Face cache (any repo folder), for information. */
export function cachedRepos(config: ResolvedConfig): string[] {
  const dir = config.paths.hfCacheDir;
  if (!existsSync(dir)) return [];
  const known = new Set(MODELS.map((m) => hfRepoFolderName(m.repo)));
  return readdirSync(dir)
    .filter((n) => n.startsWith("models--") && !known.has(n))
    .map((n) => n.slice("models--".length).replace("--", "/"));
}
