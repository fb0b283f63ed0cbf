// The setup plan of one model: each step checked quickly (done or to do, with the bytes it would download and
// write), so a ready system does no work, and the consent screen can say exactly what will happen.
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "pathe";
import type { ResolvedConfig } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { writeFileAtomic } from "../fs.ts";
import { inspectArtifacts } from "../model/artifacts.ts";
import { resolveEngineConfig } from "../model/checkpoint.ts";
import { DEMO_NOTICE, archFromConfig, estimateSizes, formatFromConfig, type SizeEstimate } from "../model/registry.ts";
import type { ModelTarget } from "../model/target.ts";
import { checkLocalCheckpoint, type DownloadPlan, type HubOptions, loadRemoteSnapshot, planDownload } from "../model/hub.ts";
import { DEMO_GENERATOR_VERSION, readDemoStamp } from "../model/demo.ts";
import { type EngineState, inspectEngine } from "./engine.ts";
import { checkPrerequisites, type Prerequisites } from "./prerequisites.ts";
import { formatBytes } from "../format.ts";

export type StepId = "prerequisites" | "deps" | "engine" | "download" | "generate" | "extract" | "repack" | "repack-2bit";

export interface SetupStep {
  id: StepId;
  title: string;
  done: boolean;
  /** What was found (done) or what will happen (to do). */
  detail: string;
  downloadBytes: number;
  writeBytes: number;
  /** Folder it writes into, for the free-disk check. */
  writeDir?: string;
  /** Sizes are estimates from the dimensions (not exact file sizes). */
  estimated?: boolean;
}

export interface SetupPlan {
  target: ModelTarget;
  steps: SetupStep[];
  /** The checkpoint folder once the download (or generation) is done; "" when a prepared model no longer needs it. */
  checkpointDir: string;
  engine: EngineState | null;
  prerequisites: Prerequisites | null;
  /** Set when files must come from the Hub. */
  download: DownloadPlan | null;
  sizes: SizeEstimate | null;
  /** The model's format, when known. */
  format: "mlx" | "hf-bf16" | null;
  notes: string[];
}

export interface PlanOptions {
  hub: HubOptions;
  /** Include the engine build (default true). */
  engine?: boolean;
  /** Checkout root holding the Makefile (tests). */
  root?: string;
  env?: Record<string, string | undefined>;
  /** A plan only (--dry-run): when the Hub cannot be reached, a registry model's download is estimated from its dimensions. */
  estimateOffline?: boolean;
}

const DEPENDENCIES_ROOT = join(import.meta.dir, "..", "..");

/** Dependencies of package.json missing from node_modules. */
export function missingDependencies(root = DEPENDENCIES_ROOT): string[] {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { dependencies?: Record<string, string> };
  return Object.keys(pkg.dependencies ?? {}).filter((d) => !existsSync(join(root, "node_modules", d, "package.json")));
}

function readJsonIfAny(path: string): Record<string, any> | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** Does the Hub answer at all (any HTTP reply within a few seconds)? */
async function hubAnswers(hub: HubOptions): Promise<boolean> {
  if (hub.offline) return false;
  try {
    await fetch(hub.endpoint, { method: "HEAD", signal: AbortSignal.timeout(5000) });
    return true;
  } catch {
    return false;
  }
}

/** Check every step of setting up `target` (no writes; the Hub is asked only when files are missing). */
export async function planSetup(config: ResolvedConfig, target: ModelTarget, opts: PlanOptions): Promise<SetupPlan> {
  const steps: SetupStep[] = [];
  const notes: string[] = [];
  const root = opts.root ?? DEPENDENCIES_ROOT;

  // --- prerequisites, dependencies, engine
  let engine: EngineState | null = null;
  let prerequisites: Prerequisites | null = null;
  if (opts.engine !== false) {
    engine = inspectEngine(root);
    if (!engine.current && engine.buildable) {
      prerequisites = await checkPrerequisites(opts.env);
      steps.push({
        id: "prerequisites",
        title: "prerequisites",
        done: prerequisites.ok,
        detail: prerequisites.ok
          ? Object.entries(prerequisites.found).map(([k, v]) => `${k} ${v}`).join(", ")
          : `missing ${prerequisites.missing.join(", ")}: ${prerequisites.installHint}`,
        downloadBytes: 0,
        writeBytes: 0,
      });
    }
  }
  const missingDeps = missingDependencies(root);
  steps.push({
    id: "deps",
    title: "dependencies",
    done: missingDeps.length === 0,
    detail: missingDeps.length ? `bun install (missing ${missingDeps.join(", ")})` : "installed",
    downloadBytes: 0,
    writeBytes: 0,
  });
  if (engine) {
    steps.push({
      id: "engine",
      title: "engine",
      done: engine.current || (!engine.buildable && engine.built),
      detail: engine.current
        ? `built: ${engine.binary}`
        : !engine.buildable
          ? engine.built
            ? `${engine.binary} (sources not in this checkout)`
            : "the engine sources are not in this checkout"
          : engine.built
            ? `rebuild (make engine): ${engine.staleBecause} changed since the last build`
            : "build (make engine)",
      downloadBytes: 0,
      writeBytes: 0,
    });
  }

  // --- what is prepared already: a fully prepared model (with its tokenizer copied) needs no checkpoint any more
  const art = inspectArtifacts(target.artifactsDir);
  const streamedDefault = target.quantization === "2bit" ? art.experts2bit.dir : art.experts.dir;
  const customExperts = target.expertsDir !== streamedDefault;
  const expertsReady = customExperts ? checkExpertsFolder(target.expertsDir) === null : art.experts.complete && (target.quantization !== "2bit" || art.experts2bit.complete);
  const prepared = art.weightsComplete && expertsReady && hasTokenizerFiles(target.artifactsDir);

  // --- checkpoint
  let checkpointDir = target.checkpointDir;
  let download: DownloadPlan | null = null;
  let rawConfig: Record<string, any> | undefined;
  if (target.kind === "demo") {
    const stamp = readDemoStamp(checkpointDir);
    const check = checkLocalCheckpoint(checkpointDir);
    const done = check.ok && check.hasTokenizer && stamp === DEMO_GENERATOR_VERSION;
    steps.push({
      id: "generate",
      title: "demo model",
      done,
      detail: done ? `generated: ${checkpointDir}` : `generate a tiny random-weight checkpoint (no network) into ${checkpointDir}`,
      downloadBytes: 0,
      writeBytes: done ? 0 : estimateSizes(target.entry!.arch, { format: "mlx" }).checkpointBytes + 12e6,
      writeDir: checkpointDir,
      estimated: true,
    });
    notes.push(DEMO_NOTICE);
  } else if (target.kind === "local") {
    const check = checkLocalCheckpoint(checkpointDir);
    if (!check.ok) throw new UserError(`checkpoint ${checkpointDir} is not usable: ${check.problems.join("; ")}`, "give a complete checkpoint folder (config.json + every *.safetensors shard)");
    if (!check.hasTokenizer) notes.push(`${checkpointDir} has no tokenizer.json: chat and prompt need one`);
  } else {
    const check = checkpointDir ? checkLocalCheckpoint(checkpointDir) : null;
    if (!check?.ok && prepared) {
      checkpointDir = "";
      steps.push({ id: "download", title: "download", done: true, detail: `not needed: prepared in ${target.artifactsDir}`, downloadBytes: 0, writeBytes: 0 });
    } else if (check?.ok) {
      steps.push({ id: "download", title: "download", done: true, detail: `in the Hugging Face cache: ${checkpointDir}`, downloadBytes: 0, writeBytes: 0 });
      if (!check.hasTokenizer) notes.push(`${target.repo} has no tokenizer.json in the cache: chat and prompt need one`);
    } else if (opts.estimateOffline && target.entry && !(await hubAnswers(opts.hub))) {
      // a dry run without network: the registry's dimensions give the sizes (the file list needs the Hub)
      const bytes = estimateSizes(target.entry.arch, { format: target.entry.format, bits: target.quantizeBits }).checkpointBytes;
      steps.push({
        id: "download",
        title: "download",
        done: false,
        detail: `about ${formatBytes(bytes)} of ${target.repo} into ${opts.hub.cacheDir}`,
        downloadBytes: bytes,
        writeBytes: bytes,
        writeDir: opts.hub.cacheDir,
        estimated: true,
      });
      notes.push(`the Hugging Face Hub (${opts.hub.endpoint}) cannot be reached: sizes are estimated from ${target.entry.id}'s dimensions`);
    } else {
      const snapshot = await loadRemoteSnapshot(target.repo, opts.hub);
      download = planDownload(snapshot, opts.hub.cacheDir);
      checkpointDir = download.snapshotDir;
      const n = download.files.filter((f) => f.state !== "present").length;
      const partial = download.files.filter((f) => f.state === "partial").reduce((s, f) => s + f.haveBytes, 0);
      steps.push({
        id: "download",
        title: "download",
        done: false,
        detail: `${n} of ${download.files.length} files of ${target.repo} (${formatBytes(download.totalBytes)} in all${partial ? `, ${formatBytes(partial)} already fetched` : ""}) into ${opts.hub.cacheDir}`,
        downloadBytes: download.downloadBytes,
        writeBytes: download.downloadBytes,
        writeDir: opts.hub.cacheDir,
      });
      if (!download.files.some((f) => f.file.path === "tokenizer.json")) notes.push(`${target.repo} has no tokenizer.json: chat and prompt need one`);
    }
  }

  // --- describe the model from its config.json (fetched with the listing when not on disk)
  rawConfig = download ? download.snapshot.config : checkpointDir ? readJsonIfAny(join(checkpointDir, "config.json")) : undefined;
  if (rawConfig) resolveEngineConfig(rawConfig); // an unsupported architecture stops here, before any large download
  const arch = rawConfig ? archFromConfig(rawConfig) : target.entry?.arch;
  const format = rawConfig ? formatFromConfig(rawConfig) : (target.entry?.format ?? null);
  const sizes = arch && format ? estimateSizes(arch, { format, bits: target.quantizeBits }) : null;

  // --- artifacts (the tokenizer and chat template files are copied beside the weights by the extract step)
  const tokenizerToCopy = Boolean(checkpointDir) && hasTokenizerFiles(checkpointDir) && !hasTokenizerFiles(target.artifactsDir);
  const extractDone = art.weightsComplete && !tokenizerToCopy;
  steps.push({
    id: "extract",
    title: "extract weights",
    done: extractDone,
    detail: extractDone
      ? `${formatBytes(art.weights.bytes)} in ${art.dir}`
      : art.weightsComplete
        ? `copy the tokenizer files into ${target.artifactsDir}`
        : `dense weights${format === "hf-bf16" ? ` (quantized to ${target.quantizeBits}-bit)` : ""} into ${target.artifactsDir}`,
    downloadBytes: 0,
    writeBytes: extractDone || art.weightsComplete ? 0 : (sizes?.denseBytes ?? 0),
    writeDir: target.artifactsDir,
    estimated: true,
  });
  if (customExperts) {
    // EXPERTS_DIR: the user keeps the experts elsewhere (a faster disk) and manages them; we only check them
    const problem = checkExpertsFolder(target.expertsDir);
    if (problem) {
      throw new UserError(
        `EXPERTS_DIR ${target.expertsDir} ${problem}`,
        `fill it (bun scripts/repack-experts.ts --model CHECKPOINT --out DIR${target.quantization === "2bit" ? " --bits 2" : ""}, then move DIR/${target.quantization === "2bit" ? "packed_experts_2bit" : "packed_experts"} there), or unset EXPERTS_DIR`,
      );
    }
    steps.push({ id: "repack", title: "repack experts", done: true, detail: `EXPERTS_DIR: ${target.expertsDir}`, downloadBytes: 0, writeBytes: 0 });
    return { target, steps, checkpointDir, engine, prerequisites, download, sizes, format, notes };
  }
  const expertsDone = art.experts.complete;
  const layersLeft = art.experts.layersExpected ? art.experts.layersExpected - art.experts.layersPresent.length : 0;
  steps.push({
    id: "repack",
    title: "repack experts",
    done: expertsDone,
    detail: expertsDone
      ? `${art.experts.layersPresent.length} layers, ${formatBytes(art.experts.bytes)} in ${art.experts.dir}`
      : `packed_experts/ (${target.quantizeBits}-bit${art.experts.layersPresent.length ? `, ${art.experts.layersPresent.length} layers already done` : ""})`,
    downloadBytes: 0,
    writeBytes: expertsDone ? 0 : sizes ? Math.max(0, sizes.expertsBytes - art.experts.bytes) : 0,
    writeDir: target.artifactsDir,
    estimated: true,
  });
  if (target.quantization === "2bit") {
    const done2 = art.experts2bit.complete;
    steps.push({
      id: "repack-2bit",
      title: "repack experts (2-bit)",
      done: done2,
      detail: done2 ? `${art.experts2bit.layersPresent.length} layers in ${art.experts2bit.dir}` : "packed_experts_2bit/ (requantized from the 4-bit experts)",
      downloadBytes: 0,
      writeBytes: done2 ? 0 : sizes ? Math.max(0, sizes.experts2bitBytes - art.experts2bit.bytes) : 0,
      writeDir: target.artifactsDir,
      estimated: true,
    });
  }
  if (layersLeft && !expertsDone) notes.push(`repack resumes: ${layersLeft} layer(s) left`);
  return { target, steps, checkpointDir, engine, prerequisites, download, sizes, format, notes };
}

/** The files the server reads besides the weights: tokenizer, its config, the chat template. */
export const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json", "special_tokens_map.json", "added_tokens.json", "generation_config.json", "vocab.json", "merges.txt"];

export const hasTokenizerFiles = (dir: string) => existsSync(join(dir, "tokenizer.json"));

/** Copy the tokenizer and template files of a checkpoint beside the prepared weights (so the download can go). */
export function copyTokenizerFiles(checkpointDir: string, artifactsDir: string): number {
  let n = 0;
  mkdirSync(artifactsDir, { recursive: true });
  for (const f of TOKENIZER_FILES) {
    const src = join(checkpointDir, f);
    if (!existsSync(src)) continue;
    writeFileAtomic(join(artifactsDir, f), readFileSync(src));
    n++;
  }
  return n;
}

/** Why a packed experts folder is not complete (layout.json and every layer file at its size), or null. */
export function checkExpertsFolder(dir: string): string | null {
  let layout: { layers?: { layer: number; file: string; size: number }[]; moe_layers?: number[] };
  try {
    layout = JSON.parse(readFileSync(join(dir, "layout.json"), "utf8"));
  } catch {
    return existsSync(dir) ? "has no readable layout.json" : "does not exist";
  }
  const layers = layout.layers ?? [];
  for (const l of layers) {
    const p = join(dir, l.file);
    if (!existsSync(p)) return `is missing ${l.file}`;
    if (statSync(p).size !== l.size) return `has ${l.file} of ${statSync(p).size} bytes, layout.json says ${l.size}`;
  }
  const missing = (layout.moe_layers ?? []).filter((m) => !layers.some((l) => l.layer === m));
  if (missing.length || layers.length === 0) return `lacks layer(s) ${missing.join(", ") || "(none listed)"}`;
  return null;
}

/** Free bytes by filesystem for the writes of the steps still to do (same disk: summed). */
export function diskNeeds(plan: SetupPlan): Array<{ dir: string; needBytes: number; device: number }> {
  const byDevice = new Map<number, { dir: string; needBytes: number; device: number }>();
  for (const s of plan.steps) {
    if (s.done || !s.writeDir || s.writeBytes <= 0) continue;
    const device = deviceOf(s.writeDir);
    const cur = byDevice.get(device) ?? { dir: s.writeDir, needBytes: 0, device };
    cur.needBytes += s.writeBytes;
    byDevice.set(device, cur);
  }
  return [...byDevice.values()];
}

function deviceOf(path: string): number {
  let p = path;
  while (!existsSync(p)) {
    const parent = join(p, "..");
    if (parent === p) break;
    p = parent;
  }
  return statSync(p).dev;
}
