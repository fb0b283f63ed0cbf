// `flashchat models rm NAME`: what of a model can be deleted (its artifacts folder, its download: the Hugging Face
// cache entry of its repo or the generated demo checkpoint), with sizes, and deleting exactly that. Never a file
// outside those folders: every path is checked against its root with symlinks resolved, and a symlink is removed
// as a link, never followed.
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync, rmdirSync, unlinkSync } from "node:fs";
import { basename, dirname, join } from "pathe";
import type { ResolvedConfig } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { formatBytes } from "../format.ts";
import { hfRepoFolderName } from "../model/hf-cache.ts";
import { resolveModelTarget } from "../model/target.ts";
import { isProcessAlive } from "../process/process-info.ts";
import { askYesNo, canAskOnStderr } from "../term.ts";

export interface RemovalItem {
  /** artifacts: our extracted weights and packed experts; download: the HF cache entry or the generated demo. */
  kind: "artifacts" | "download" | "prompt-cache";
  path: string;
  /** Bytes on disk (symlinks count as links, never their targets). */
  bytes: number;
}

export interface RemovalPlan {
  model: string;
  items: RemovalItem[];
  bytes: number;
  /** Why something was left out (a user's own checkpoint folder). */
  notes: string[];
}

/** Bytes under `path` without following symlinks. */
export function sizeOnDisk(path: string): number {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const n of readdirSync(path)) total += sizeOnDisk(join(path, n));
  return total;
}

/**
 * `path` is a direct child of `root` (named `name` when given), with symlinks in both resolved: no `..`, no link
 * pointing elsewhere. Throws (a bug or a tampered folder) otherwise.
 */
export function checkInside(root: string, path: string, name?: string): void {
  const base = basename(path);
  const realRoot = realpathSync(root);
  const realParent = realpathSync(dirname(path));
  if (base === "" || base === "." || base === ".." || realParent !== realRoot || (name !== undefined && base !== name))
    throw new UserError(`refusing to delete ${path}: it is not directly inside ${root}`, "flashchat only deletes its own folders");
}

/** Delete `path` (a folder, a file or a link) without following any symlink. */
function removeNoFollow(path: string): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink() || !st.isDirectory()) {
    unlinkSync(path);
    return;
  }
  for (const n of readdirSync(path)) removeNoFollow(join(path, n));
  rmdirSync(path);
}

type RemoveConfig = Pick<ResolvedConfig, "modelRepo" | "modelPath" | "artifactsDir" | "expertsDir" | "quantization" | "activeExperts" | "maxTokens" | "paths">;

/** What `models rm NAME` would delete: artifacts and/or the download (`what`; default both). */
export function planRemoval(config: RemoveConfig, name: string, what: { artifacts: boolean; download: boolean }): RemovalPlan {
  const target = resolveModelTarget(config, name);
  const items: RemovalItem[] = [];
  const notes: string[] = [];
  const add = (kind: RemovalItem["kind"], root: string, path: string, expectName?: string) => {
    if (!existsSync(root) || !existsSync(path)) return;
    checkInside(root, path, expectName);
    items.push({ kind, path, bytes: sizeOnDisk(path) });
  };
  if (what.artifacts) {
    add("artifacts", config.artifactsDir, target.artifactsDir);
    add("prompt-cache", join(config.paths.dataDir, "prompt-cache"), join(config.paths.dataDir, "prompt-cache", `${basename(target.artifactsDir)}.snapshots`));
  }
  if (what.download) {
    if (target.kind === "demo") add("download", join(config.paths.dataDir, "checkpoints"), target.checkpointDir, target.repo);
    else if (target.kind === "hub") {
      const parts = target.repo.split("/");
      if (parts.length !== 2 || parts.some((p) => p === "" || p === "." || p === "..")) throw new UserError(`not a Hugging Face repo: ${target.repo}`, "a repo is org/name");
      const folder = hfRepoFolderName(target.repo);
      add("download", config.paths.hfCacheDir, join(config.paths.hfCacheDir, folder), folder);
    } else notes.push(`the checkpoint folder ${target.checkpointDir} is yours: flashchat never deletes it`);
  }
  return { model: target.id, items, bytes: items.reduce((a, i) => a + i.bytes, 0), notes };
}

/** Delete what the plan lists (checked again right before). */
export function removePlanned(config: RemoveConfig, plan: RemovalPlan): void {
  const roots: Record<RemovalItem["kind"], string> = {
    artifacts: config.artifactsDir,
    "prompt-cache": join(config.paths.dataDir, "prompt-cache"),
    download: dirname(plan.items.find((i) => i.kind === "download")?.path ?? config.paths.hfCacheDir),
  };
  for (const item of plan.items) {
    if (item.kind === "download") {
      const ok = [config.paths.hfCacheDir, join(config.paths.dataDir, "checkpoints")].some((r) => existsSync(r) && realpathSync(r) === realpathSync(dirname(item.path)));
      if (!ok) throw new UserError(`refusing to delete ${item.path}: it is not in the Hugging Face cache or our checkpoints folder`);
    }
    checkInside(roots[item.kind], item.path);
    removeNoFollow(item.path);
  }
}

export interface RemoveOptions {
  /** Only the artifacts / only the download (neither: both). */
  artifacts?: boolean;
  download?: boolean;
  yes?: boolean;
  /** Print the result as JSON on stdout. */
  json?: boolean;
  /** A terminal to ask on (default: stdin and stderr are terminals, CI not set). */
  interactive?: boolean;
}

/**
 * `models rm NAME`: the plan with sizes (stderr), refused while a server has the model loaded or a setup of it
 * runs, then consent (a y/N question on a terminal; --yes otherwise), then the deletion. --json: the result.
 */
export async function removeModel(config: ResolvedConfig, name: string, opts: RemoveOptions = {}): Promise<RemovalPlan> {
  const both = !opts.artifacts && !opts.download;
  const plan = planRemoval(config, name, { artifacts: both || !!opts.artifacts, download: both || !!opts.download });
  const say = (l: string) => process.stderr.write(`${l}\n`);
  for (const n of plan.notes) say(n);
  const report = (removed: RemovalItem[]) => {
    if (opts.json) console.log(JSON.stringify({ model: plan.model, removed, bytes: removed.reduce((a, i) => a + i.bytes, 0), notes: plan.notes }, null, 2));
  };
  if (!plan.items.length) {
    say(`nothing of ${plan.model} to delete${both ? "" : opts.artifacts ? " (no artifacts)" : " (no download)"}`);
    report([]);
    return plan;
  }
  const { readServerState } = await import("../process/server-control.ts");
  const state = await readServerState(config);
  const art = plan.items.find((i) => i.kind === "artifacts");
  if (art && state.running && state.artifactsDir && state.artifactsDir === art.path)
    throw new UserError(`the running server (pid ${state.pid}) has ${plan.model} loaded`, "stop it first: flashchat serve --stop");
  const lock = join(config.paths.dataDir, "locks", `setup-${basename(resolveModelTarget(config, name).artifactsDir)}.lock`);
  const holder = existsSync(lock) ? Number.parseInt(readFileSync(lock, "utf8"), 10) : 0;
  if (holder > 0 && isProcessAlive(holder)) throw new UserError(`${plan.model} is being set up (pid ${holder})`, "wait for it to finish (or stop it), then run this again");

  const width = Math.max(...plan.items.map((i) => i.kind.length));
  say(`Deleting ${plan.model}:`);
  for (const i of plan.items) say(`  ${i.kind.padEnd(width)}  ${formatBytes(i.bytes).padStart(8)}  ${i.path}`);
  if (!opts.yes) {
    if (!(opts.interactive ?? canAskOnStderr())) throw new UserError(`deleting ${formatBytes(plan.bytes)} of ${plan.model} needs your consent, and there is no terminal to ask on`, `run again with --yes: flashchat models rm ${name} --yes`);
    if (!(await askYesNo(`Delete ${formatBytes(plan.bytes)}? [y/N]`))) throw new UserError("nothing was deleted");
  }
  removePlanned(config, plan);
  say(`deleted ${formatBytes(plan.bytes)} of ${plan.model}`);
  report(plan.items);
  return plan;
}
