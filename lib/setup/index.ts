// Auto-setup: check every step, ask once, run what is missing (build, download, generate, extract, repack),
// and confirm the model is ready. `ensureReady()` is what chat, prompt, serve and benchmark call first.
import { existsSync } from "node:fs";
import { basename, join } from "pathe";
import type { ResolvedConfig } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { elapsedMs, logger, logStep } from "../log.ts";
import type { ProgressFn } from "../progress.ts";
import { resolveColor } from "../term.ts";
import { inspectArtifacts } from "../model/artifacts.ts";
import { generateDemoCheckpoint } from "../model/demo.ts";
import { extractWeights } from "../model/extract.ts";
import { checkLocalCheckpoint, downloadSnapshot, type HubOptions, resolveHubOptions } from "../model/hub.ts";
import { DEMO_NOTICE } from "../model/registry.ts";
import { type ModelTarget, resolveModelTarget } from "../model/target.ts";
import { repackExperts } from "../model/repack.ts";
import { askConsent, checkDisks, needsConsent, renderPlan } from "./consent.ts";
import { buildEngine, REPO_ROOT } from "./engine.ts";
import { withLock } from "./lock.ts";
import { checkExpertsFolder, copyTokenizerFiles, hasTokenizerFiles, planSetup, type SetupPlan, type StepId } from "./plan.ts";
import { formatElapsed } from "../format.ts";
import { createProgressPrinter } from "../progress.ts";

export type { SetupPlan, SetupStep, StepId } from "./plan.ts";
export { renderPlan } from "./consent.ts";
export { listModelStatus, type ModelStatus } from "./status.ts";

export interface SetupOptions {
  /** --yes: agree to downloads and large writes without asking. */
  yes?: boolean;
  /** --model: use this model instead of MODEL_REPO. */
  model?: string;
  /** Print the plan and stop (nothing is written). */
  dryRun?: boolean;
  /** Include the engine build (default true; model-only tests turn it off). */
  engine?: boolean;
  /** Ask on a terminal? Default: stdin and stdout are a TTY and CI is not set. */
  interactive?: boolean;
  /** The consent question (tests); resolve false for no. */
  confirm?: (question: string) => Promise<boolean>;
  /** Environment for the Hub settings (HF_ENDPOINT, HF_TOKEN, …); default process.env. */
  env?: Record<string, string | undefined>;
  /** Hub options on top of those from env (tests: a fetch, retry timings). */
  hub?: Partial<HubOptions>;
  /** Download tuning (tests). */
  download?: { retries?: number; retryDelayMs?: number; concurrency?: number };
  /** Checkout root with the Makefile (tests). */
  root?: string;
  /** Say nothing when everything is ready already (ensureReady). */
  quietWhenReady?: boolean;
}

/** A model ready to run: every path the engine and the server need. */
export interface ReadyModel extends ModelTarget {
  /** The checkpoint folder; "" when the model is prepared and its download was deleted. */
  checkpointDir: string;
  /** Folder with tokenizer.json, tokenizer_config.json and the chat template: the artifacts folder (copied there), else the checkpoint. */
  tokenizerDir: string;
  /** The engine binary ("" when setup ran without the engine step). */
  engineBinary: string;
  /** tokenizer.json is in the checkpoint (chat and prompt need it). */
  hasTokenizer: boolean;
  isDemo: boolean;
}

export interface SetupResult {
  plan: SetupPlan;
  /** Steps that ran in this call, in order. */
  ran: StepId[];
  ready: ReadyModel;
}

const resumeCommandFor = (target: ModelTarget) => `flashchat setup --model ${target.kind === "local" ? target.repo : target.entry?.id ?? target.repo}`;

/** Check, ask once, run what is missing; returns what ran and the ready model. */
export async function runSetup(config: ResolvedConfig, opts: SetupOptions = {}): Promise<SetupResult> {
  const env = opts.env ?? process.env;
  const target = resolveModelTarget(config, opts.model);
  const hub: HubOptions = { ...resolveHubOptions(config.paths.hfCacheDir, env), ...opts.hub };
  const root = opts.root ?? REPO_ROOT;
  const planOpts = { hub, engine: opts.engine, root, env, estimateOffline: opts.dryRun };
  const planned = elapsedMs();
  const first = await planSetup(config, target, planOpts);

  logStep(`setup: planned ${target.repo} (${first.steps.filter((x) => !x.done).length} step(s) to do)`, planned);
  if (opts.dryRun) {
    // the plan is what a dry run is for: shown with -q too
    process.stderr.write(`${renderPlan(first, { color: resolveColor(config.colorOutput, process.stderr.isTTY) })}\n`);
    return { plan: first, ran: [], ready: readyModel(first, opts, false) };
  }
  if (first.steps.every((s) => s.done)) {
    if (!opts.quietWhenReady) logger.success(`${target.entry?.title ?? target.repo} is ready (${target.artifactsDir})`);
    return { plan: first, ran: [], ready: readyModel(first, opts, true) };
  }
  const lock = join(config.paths.dataDir, "locks", `setup-${basename(target.artifactsDir)}.lock`);
  return withLock(lock, target.repo, async (waited) => {
    // another flashchat was setting this model up: look again, there may be nothing left to do
    const plan = waited ? await planSetup(config, target, planOpts) : first;
    if (plan.steps.every((s) => s.done)) return { plan, ran: [] as StepId[], ready: readyModel(plan, opts, true) };
    return runSteps(config, target, plan, hub, root, opts);
  });
}

async function runSteps(cfg: ResolvedConfig, target: ModelTarget, plan: SetupPlan, hub: HubOptions, root: string, opts: SetupOptions): Promise<SetupResult> {
  const todo = plan.steps.filter((s) => !s.done);
  const prereq = plan.steps.find((s) => s.id === "prerequisites");
  if (prereq && !prereq.done) {
    throw new UserError(
      `cannot build the engine: ${plan.prerequisites!.missing.join(" and ")} ${plan.prerequisites!.missing.length > 1 ? "are" : "is"} missing`,
      `${plan.prerequisites!.installHint}; then run: ${resumeCommandFor(target)}`,
    );
  }
  const engineStep = plan.steps.find((s) => s.id === "engine");
  if (engineStep && !engineStep.done && !plan.engine!.buildable) {
    throw new UserError("the native engine is not part of this checkout (native/Makefile is missing)", "update your copy of flashchat");
  }

  logger.log(renderPlan(plan, { color: resolveColor(cfg.colorOutput, process.stderr.isTTY) }));
  checkDisks(plan);
  if (needsConsent(plan)) await askConsent(plan, { yes: opts.yes, interactive: opts.interactive, confirm: opts.confirm, resumeCommand: resumeCommandFor(target) });

  const ran: StepId[] = [];
  let checkpointDir = plan.checkpointDir;
  const t0 = performance.now();
  for (const step of todo) {
    const started = performance.now();
    switch (step.id) {
      case "prerequisites":
        break;
      case "deps":
        logger.start("installing dependencies (bun install)");
        await (await import("zx")).$({ cwd: root, quiet: true })`${process.execPath} install --frozen-lockfile`;
        break;
      case "engine":
        logger.start("building the engine (make engine)");
        await buildEngine(root);
        break;
      case "download":
        checkpointDir = await downloadSnapshot(plan.download!, hub, { ...opts.download, skipDiskCheck: true });
        break;
      case "generate":
        logger.start("generating the demo model");
        await generateDemoCheckpoint(checkpointDir);
        break;
      case "extract":
        if (!inspectArtifacts(target.artifactsDir).weightsComplete) {
          logger.start(`extracting the dense weights into ${target.artifactsDir}`);
          await withProgress("extract", (onProgress) => extractWeights({ checkpointDir, outDir: target.artifactsDir, bits: target.quantizeBits, repo: target.repo, onProgress }));
        }
        copyTokenizerFiles(checkpointDir, target.artifactsDir);
        break;
      case "repack":
        logger.start(`repacking the experts into ${join(target.artifactsDir, "packed_experts")}`);
        await withProgress("repack", (onProgress) => repackExperts({ checkpointDir, outDir: target.artifactsDir, bits: plan.format === "hf-bf16" ? target.quantizeBits : undefined, repo: target.repo, onProgress }));
        break;
      case "repack-2bit":
        logger.start("requantizing the experts to 2 bits");
        await withProgress("repack 2-bit", (onProgress) => repackExperts({ checkpointDir, outDir: target.artifactsDir, bits: 2, repo: target.repo, onProgress }));
        break;
    }
    ran.push(step.id);
    if (step.id !== "prerequisites") logger.success(`${step.title}: done in ${seconds(performance.now() - started)}`);
  }

  const ready = readyModel({ ...plan, checkpointDir }, opts, true);
  logger.success(`${target.entry?.title ?? target.repo} is ready (setup took ${seconds(performance.now() - t0)})`);
  return { plan, ran, ready };
}

/** Check once more that everything the engine needs is there; `strict` turns gaps into errors. */
function readyModel(plan: SetupPlan, opts: SetupOptions, strict: boolean): ReadyModel {
  const t = plan.target;
  const problems: string[] = [];
  const checkpoint = plan.checkpointDir ? checkLocalCheckpoint(plan.checkpointDir) : null;
  if (checkpoint && !checkpoint.ok) problems.push(`checkpoint ${plan.checkpointDir}: ${checkpoint.problems.join("; ")}`);
  const art = inspectArtifacts(t.artifactsDir);
  if (!art.weightsComplete) problems.push(`model_weights.bin/json in ${t.artifactsDir} incomplete`);
  const experts = t.quantization === "2bit" ? art.experts2bit : art.experts;
  const expertsProblem = t.expertsDir !== experts.dir ? checkExpertsFolder(t.expertsDir) : experts.complete ? null : "incomplete";
  if (expertsProblem) problems.push(`packed experts in ${t.expertsDir}: ${expertsProblem}`);
  const engineBinary = opts.engine === false ? "" : (plan.engine?.binary ?? "");
  if (engineBinary && !existsSync(engineBinary)) problems.push(`engine ${engineBinary} not built`);
  if (strict && problems.length) {
    throw new Error(`bug: setup finished but the model is not ready: ${problems.join("; ")}`);
  }
  const tokenizerDir = [t.artifactsDir, plan.checkpointDir].find((d) => d && hasTokenizerFiles(d)) ?? "";
  return { ...t, checkpointDir: plan.checkpointDir, tokenizerDir, engineBinary, hasTokenizer: Boolean(tokenizerDir), isDemo: t.kind === "demo" };
}

const seconds = (ms: number) => formatElapsed(ms / 1000);

/** A bar for one step's tracker events on a terminal; without one the writers log a line every few seconds. */
async function withProgress<T>(label: string, run: (onProgress: ProgressFn | undefined) => Promise<T>): Promise<T> {
  const printer = createProgressPrinter(label);
  try {
    return await run(printer?.onProgress);
  } finally {
    printer?.end();
  }
}

export interface EnsureReadyOptions extends Omit<SetupOptions, "dryRun" | "quietWhenReady"> {}

/**
 * Make sure the model (MODEL_REPO, or `model`) is ready to run, setting up what is missing (asking once, or
 * --yes); silent when everything is there. Prints the demo model's random-text notice when it is the demo.
 */
export async function ensureReady(config: ResolvedConfig, opts: EnsureReadyOptions = {}): Promise<ReadyModel> {
  const { ready } = await runSetup(config, { ...opts, quietWhenReady: true });
  if (ready.isDemo) logger.warn(DEMO_NOTICE);
  return ready;
}

