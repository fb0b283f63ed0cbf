// Where a model id becomes folders: `--model ID` / MODEL_REPO (a registry id, a Hugging Face repo or a local
// folder) -> the checkpoint, artifacts and experts folders and the model's own defaults. The only place that
// does this: config holds plain values, and adding a model source touches lib/model only.
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "pathe";
import type { ResolvedConfig } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { expandHome } from "../fs.ts";
import { artifactPaths, resolveModelArtifactsDir } from "./artifacts.ts";
import { findHfSnapshot } from "./hf-cache.ts";
import { DEMO_ID, findModel, type ModelEntry, MODELS, type Sampling } from "./registry.ts";

/** Longest reply when neither MAX_TOKENS nor the model says otherwise. */
export const DEFAULT_MAX_TOKENS = 8192;

export interface ModelTarget {
  /** What the user named: a registry id, a Hub repo or a folder. */
  id: string;
  /** hub: a Hugging Face repo; local: a checkpoint folder on disk; demo: generated locally. */
  kind: "hub" | "local" | "demo";
  /** The registry's entry, when the model is a known one. */
  entry: ModelEntry | undefined;
  /** Hub repo ("org/name"), "demo", or the folder for local checkpoints. */
  repo: string;
  /** Checkpoint folder: MODEL_PATH, the cache snapshot or the local folder; "" when not downloaded yet. */
  checkpointDir: string;
  /** Artifacts folder of this model (model_weights.*, packed_experts*). */
  artifactsDir: string;
  /** Packed experts folder the engine streams from (EXPERTS_DIR, else the artifacts' one for QUANTIZATION). */
  expertsDir: string;
  quantization: "4bit" | "2bit";
  /** Bits our own quantization uses for hf-bf16 sources. */
  quantizeBits: number;
  /** Experts per token to run with: ACTIVE_EXPERTS, else the registry's default, else the model's own (null = unknown yet). */
  activeExperts: number | null;
  sampling: Sampling | undefined;
  /** Longest reply: MAX_TOKENS when set, else the model's own default, else DEFAULT_MAX_TOKENS. */
  maxTokens: number;
}

/** The settings a model's folders and defaults depend on. */
export type ModelSettings = Pick<ResolvedConfig, "modelRepo" | "modelPath" | "artifactsDir" | "expertsDir" | "quantization" | "activeExperts" | "maxTokens" | "paths">;

const REPO_RE = /^[\w.-]+\/[\w.-]+$/;
const looksLikePath = (s: string) => /^(\/|\.\.?(\/|$)|~(\/|$))/.test(s);

/** Where the demo's generated checkpoint lives. */
export const demoCheckpointDir = (config: Pick<ResolvedConfig, "paths">) => join(config.paths.dataDir, "checkpoints", DEMO_ID);

/**
 * Resolve a model (`model`, e.g. a command's --model; default MODEL_REPO) to its source, folders and defaults.
 * MODEL_PATH names the checkpoint of MODEL_REPO only, so it is ignored for another `model`.
 * No network and no heavy reads: what is downloaded or prepared is for the setup steps to find out.
 */
export function resolveModelTarget(config: ModelSettings, model?: string): ModelTarget {
  const other = model !== undefined && model.trim() !== "" && model.trim() !== config.modelRepo.trim();
  const id = (other ? model! : config.modelRepo).trim();
  const modelPath = other ? "" : config.modelPath;
  if (!id) throw new UserError("no model chosen", "pass --model ID or set MODEL_REPO (`flashchat models` lists the known ones)");
  const entry = findModel(id);
  let kind: ModelTarget["kind"];
  let repo: string;
  let checkpointDir: string;
  if (entry?.origin === "generated") {
    kind = "demo";
    repo = entry.repo;
    checkpointDir = demoCheckpointDir(config);
  } else if (entry || (REPO_RE.test(id) && !looksLikePath(id))) {
    // a repo: MODEL_PATH names its checkpoint (a local copy), else its snapshot in the Hugging Face cache
    kind = modelPath ? "local" : "hub";
    repo = entry?.repo ?? id;
    checkpointDir = modelPath || findHfSnapshot(config.paths.hfCacheDir, repo);
  } else if (looksLikePath(id) || existsSync(id)) {
    kind = "local";
    repo = resolve(expandHome(id));
    checkpointDir = modelPath || repo;
    if (!existsSync(checkpointDir) || !statSync(checkpointDir).isDirectory()) {
      throw new UserError(`model folder not found: ${checkpointDir}`, "give a checkpoint folder (config.json + *.safetensors), a Hugging Face repo (org/name) or a registry id");
    }
  } else {
    const near = MODELS.map((m) => m.id).find((m) => m.startsWith(id.toLowerCase().slice(0, 4)));
    throw new UserError(
      `unknown model ${JSON.stringify(id)}`,
      `use a registry id (${MODELS.map((m) => m.id).join(", ")}), a Hugging Face repo (org/name) or a checkpoint folder${near ? `; did you mean ${near}?` : ""}`,
    );
  }
  const format = entry?.format;
  const quantizeBits = entry?.bits ?? 4;
  const artifactsDir = resolveModelArtifactsDir(config, {
    modelId: kind === "hub" ? repo : kind === "demo" ? DEMO_ID : checkpointDir,
    quantizedBits: format === "hf-bf16" ? quantizeBits : undefined,
  });
  const paths = artifactPaths(artifactsDir);
  const expertsDir = config.expertsDir || (config.quantization === "2bit" ? paths.experts2bitDir : paths.expertsDir);
  return {
    id,
    kind,
    entry,
    repo,
    checkpointDir,
    artifactsDir,
    expertsDir,
    quantization: config.quantization,
    quantizeBits,
    activeExperts: config.activeExperts ?? entry?.activeExperts ?? null,
    sampling: entry?.sampling,
    maxTokens: config.maxTokens ?? entry?.maxTokens ?? DEFAULT_MAX_TOKENS,
  };
}

/**
 * The sampling a server starts with: TEMPERATURE / TOP_P when the user set them (any source but the default),
 * else the model's recommended values from the registry, else the settings' defaults.
 */
export function serverSampling(config: Pick<ResolvedConfig, "temperature" | "topP" | "sources">, target: Pick<ModelTarget, "sampling">): { temperature: number; topP: number } {
  const userSet = (key: string) => config.sources[key] !== undefined && config.sources[key]!.kind !== "default";
  return {
    temperature: userSet("TEMPERATURE") ? config.temperature : (target.sampling?.temperature ?? config.temperature),
    topP: userSet("TOP_P") ? config.topP : (target.sampling?.topP ?? config.topP),
  };
}

/** TEMPERATURE / TOP_P for a request: only those the user set, so the server's (the model's recommended) apply otherwise. */
export function requestSampling(config: Pick<ResolvedConfig, "temperature" | "topP" | "sources">): { temperature?: number; topP?: number } {
  const userSet = (key: string) => config.sources[key] !== undefined && config.sources[key]!.kind !== "default";
  return { temperature: userSet("TEMPERATURE") ? config.temperature : undefined, topP: userSet("TOP_P") ? config.topP : undefined };
}
