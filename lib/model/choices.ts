// The models a user can pick here (the registry's and any other prepared in the artifacts folder, with what is
// set up), and the model used when MODEL_REPO is not configured: the one set up, not a 200 GB download.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "pathe";
import type { ResolvedConfig } from "../config/schema.ts";
import { inspectArtifacts, resolveModelArtifactsDir } from "./artifacts.ts";
import { findHfSnapshot } from "./hf-cache.ts";
import { DEMO_ID, MODELS } from "./registry.ts";
import { demoCheckpointDir } from "./target.ts";

export interface ModelChoice {
  /** What --model / MODEL_REPO takes: a registry id, or the checkpoint folder of another prepared model. */
  id: string;
  /** For people: the registry title, or the folder. */
  title: string;
  /** registry: a model flashchat knows; local: another model prepared here. */
  kind: "registry" | "local";
  /** Weights and experts (of QUANTIZATION) are complete: it runs without a setup step. */
  prepared: boolean;
  /** Its checkpoint is on disk (HF cache snapshot, the generated demo, the local folder). */
  downloaded: boolean;
  /** MODEL_REPO names it. */
  current: boolean;
  artifactsDir: string;
  /** One line for a choice list: "demo (tiny, random weights) — set up". */
  label: string;
}

type ChoiceConfig = Pick<ResolvedConfig, "modelRepo" | "artifactsDir" | "quantization" | "paths">;

const isPrepared = (dir: string, quantization: string) => {
  const a = inspectArtifacts(dir);
  return a.weightsComplete && (quantization === "2bit" ? a.experts2bit.complete : a.experts.complete);
};

const stateWord = (c: Pick<ModelChoice, "prepared" | "downloaded">) => (c.prepared ? "set up" : c.downloaded ? "downloaded, not prepared" : "not downloaded");

/** Registry models (in registry order), then other prepared models in the artifacts folder (newest first). */
export function listModelChoices(config: ChoiceConfig): ModelChoice[] {
  const cur = config.modelRepo.trim().toLowerCase();
  const known = new Set<string>();
  const out: ModelChoice[] = [];
  for (const m of MODELS) {
    const artifactsDir = resolveModelArtifactsDir(config, { modelId: m.repo, quantizedBits: m.format === "hf-bf16" ? m.bits : undefined });
    known.add(artifactsDir);
    const ckpt = m.origin === "generated" ? demoCheckpointDir(config) : findHfSnapshot(config.paths.hfCacheDir, m.repo);
    const c = {
      id: m.id,
      title: m.title,
      kind: "registry" as const,
      prepared: isPrepared(artifactsDir, config.quantization),
      downloaded: ckpt !== "" && existsSync(join(ckpt, "config.json")),
      current: cur === m.id || cur === m.repo.toLowerCase(),
      artifactsDir,
    };
    out.push({ ...c, label: `${m.id}  ${m.title} — ${stateWord(c)}` });
  }
  const others: (ModelChoice & { mtimeMs: number })[] = [];
  if (existsSync(config.artifactsDir)) {
    for (const name of readdirSync(config.artifactsDir)) {
      const dir = join(config.artifactsDir, name);
      if (known.has(dir) || !existsSync(join(dir, "model_weights.json"))) continue;
      const repo = inspectArtifacts(dir).manifest.repo;
      // a model we can name again: its checkpoint folder still exists (or a Hub repo id)
      if (!repo || (repo.startsWith("/") && !existsSync(repo))) continue;
      if (resolveModelArtifactsDir(config, { modelId: repo }) !== dir) continue;
      const prepared = isPrepared(dir, config.quantization);
      const c = { id: repo, title: repo, kind: "local" as const, prepared, downloaded: true, current: cur === repo.toLowerCase(), artifactsDir: dir };
      others.push({ ...c, label: `${repo} — ${stateWord(c)}`, mtimeMs: statSync(dir).mtimeMs });
    }
  }
  others.sort((a, b) => b.mtimeMs - a.mtimeMs);
  return [...out, ...others.map(({ mtimeMs: _, ...c }) => c)];
}

export interface DefaultModel {
  /** The config to run with: MODEL_REPO replaced when it was not configured and another model is set up. */
  config: ResolvedConfig;
  /** One line saying which model was picked and why (undefined: MODEL_REPO was configured, or nothing else is set up). */
  note?: string;
}

/**
 * MODEL_REPO not configured (its default): run the model that is set up rather than the default's 200 GB
 * download. Order: the model a running server has loaded (`loadedArtifactsDir`), the default itself if set up,
 * else set-up registry models (in registry order, the demo last), else other set-up models (newest first).
 * Nothing set up: the default stays (setup offers it).
 */
export function resolveDefaultModel(config: ResolvedConfig, opts: { loadedArtifactsDir?: string } = {}): DefaultModel {
  const source = config.sources.MODEL_REPO;
  if (source && source.kind !== "default") return { config };
  if (config.modelPath) return { config }; // MODEL_PATH names a local copy of the default model
  const choices = listModelChoices(config).filter((c) => c.prepared);
  const use = (id: string, note: string): DefaultModel => ({
    config: { ...config, modelRepo: id, modelPath: "", sources: { ...config.sources, MODEL_REPO: { kind: "default", where: `the model set up here (${id})` } } },
    note: `no MODEL_REPO configured: using ${id}, ${note}; choose with --model ID or: flashchat config set MODEL_REPO ID`,
  });
  // a running server's model comes first: it answers at once
  const loaded = opts.loadedArtifactsDir ? listModelChoices(config).find((c) => c.artifactsDir === opts.loadedArtifactsDir) : undefined;
  if (loaded) return loaded.current ? { config } : use(loaded.id, "the model the running server has loaded");
  if (opts.loadedArtifactsDir) return { config }; // a server with a model we cannot name answers anyway
  if (!choices.length || choices.some((c) => c.current)) return { config };
  const rank = (c: ModelChoice) => (c.id === DEMO_ID ? 2 : c.kind === "registry" ? 0 : 1);
  const pick = [...choices].sort((a, b) => rank(a) - rank(b))[0]!;
  const also = choices.filter((c) => c !== pick).map((c) => c.id);
  return use(pick.id, also.length ? `the first of the models set up here (also: ${also.join(", ")})` : "the model set up here");
}

