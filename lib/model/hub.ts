// Hugging Face Hub downloads into the standard cache layout (models--ORG--NAME/{blobs,snapshots/REV,refs/main}),
// so Python's huggingface_hub and flashchat share one copy: only the files a model needs, resumed, verified.
import { createReadStream, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, readSync, renameSync, rmSync, statSync, symlinkSync, openSync, writeSync, fsyncSync, closeSync } from "node:fs";
import type * as HubClient from "@huggingface/hub";
import { dirname, join, relative } from "pathe";
import { resolveHfHome } from "../config/index.ts";
import { hfRepoFolderName } from "./hf-cache.ts";
import { UserError } from "../errors.ts";
import { checkFreeDisk, writeFileAtomic } from "../fs.ts";
import { logger } from "../log.ts";
import { formatBytes } from "../format.ts";
import { createByteProgress } from "../progress.ts";

// @huggingface/hub (and its hashing wasm) is loaded by the first call that talks to the Hub, not by every command
// that plans or checks a setup from local files.
let hubClient: typeof HubClient | undefined;
const loadHubClient = async (): Promise<typeof HubClient> => (hubClient ??= await import("@huggingface/hub"));
/** An HTTP error from the Hub client (none can exist before the client was loaded). */
const isHubApiError = (e: unknown): e is HubClient.HubApiError => hubClient !== undefined && e instanceof hubClient.HubApiError;

export const DEFAULT_HF_ENDPOINT = "https://huggingface.co";

export interface HubOptions {
  /** HF_ENDPOINT, default https://huggingface.co (no trailing slash). */
  endpoint: string;
  /** HF_TOKEN, else the token file huggingface-cli login wrote; undefined = anonymous. */
  token?: string;
  /** Where the token came from, for messages ("HF_TOKEN", a file path). */
  tokenSource?: string;
  /** The hub cache folder (config.paths.hfCacheDir). */
  cacheDir: string;
  /** HF_HUB_OFFLINE=1: never touch the network. */
  offline?: boolean;
  fetch?: typeof fetch;
}

/** Hub settings from the environment, the way huggingface_hub reads them. */
export function resolveHubOptions(cacheDir: string, env: Record<string, string | undefined> = process.env): HubOptions {
  const endpoint = (env.HF_ENDPOINT || DEFAULT_HF_ENDPOINT).replace(/\/+$/, "");
  let token = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined;
  let tokenSource = token ? (env.HF_TOKEN ? "HF_TOKEN" : "HUGGING_FACE_HUB_TOKEN") : undefined;
  if (!token) {
    const hfHome = resolveHfHome(env);
    const file = env.HF_TOKEN_PATH || join(hfHome, "token");
    try {
      token = readFileSync(file, "utf8").trim() || undefined;
      if (token) tokenSource = file;
    } catch {
      // no stored login
    }
  }
  const offline = ["1", "true", "yes", "on"].includes((env.HF_HUB_OFFLINE || "").toLowerCase());
  return { endpoint, token, tokenSource, cacheDir, offline };
}

/** The files a model needs: weights, index, config, tokenizer and chat template (top level only). */
export function isNeededFile(path: string): boolean {
  if (path.includes("/")) return false;
  return (
    /\.safetensors$/.test(path) ||
    /^(config|generation_config|model\.safetensors\.index|tokenizer|tokenizer_config|special_tokens_map|added_tokens|chat_template)\.json$/.test(path) ||
    /^(vocab\.json|merges\.txt|chat_template\.jinja)$/.test(path)
  );
}

export interface RemoteFile {
  path: string;
  sizeBytes: number;
  /** Blob name in the cache: the LFS sha256 for LFS files, else the git blob id (as huggingface_hub names them). */
  etag: string;
  /** sha256 of the content (LFS files). */
  sha256?: string;
  /** git blob sha1 (regular files): sha1("blob <size>\0" + content). */
  gitOid?: string;
}

export interface RemoteSnapshot {
  repo: string;
  /** Commit the snapshot folder is named after. */
  commit: string;
  files: RemoteFile[];
  /** The repo's config.json (fetched with the listing; not written to the cache until the download). */
  config: Record<string, any>;
}

export type FileState = "present" | "blob" | "partial" | "missing";

export interface DownloadPlan {
  snapshot: RemoteSnapshot;
  repoDir: string;
  snapshotDir: string;
  files: Array<{ file: RemoteFile; state: FileState; haveBytes: number }>;
  totalBytes: number;
  /** Bytes still to fetch (total minus what is in the cache or in partial files). */
  downloadBytes: number;
}

export const repoCacheDir = (cacheDir: string, repo: string) => join(cacheDir, hfRepoFolderName(repo));

/** Turn a Hub API failure into one line that says what to do. Anything that is not a Hub or network error is rethrown. */
export function explainHubError(e: unknown, repo: string, opts: HubOptions): never {
  if (e instanceof UserError) throw e;
  const page = `${opts.endpoint}/${repo}`;
  if (isHubApiError(e)) {
    // the message ends with the request URL (which may say expand=gated): judge by the body only
    const text = JSON.stringify(e.data ?? {});
    const gated = /gated|restricted|awaiting a review|access to model/i.test(text);
    if (gated && (e.statusCode === 401 || e.statusCode === 403)) {
      throw userError(
        `${repo} is a gated model: its owners require you to accept their conditions first`,
        `accept them at ${page} while logged in, then set HF_TOKEN to a token of that account (https://huggingface.co/settings/tokens)`,
        e,
      );
    }
    if (e.statusCode === 401 && opts.token && !/not found/i.test(text)) {
      throw userError(
        `Hugging Face rejected the token from ${opts.tokenSource ?? "HF_TOKEN"} (401) while opening ${repo}`,
        "the token is invalid or expired: create a new one at https://huggingface.co/settings/tokens, or unset HF_TOKEN for public models",
        e,
      );
    }
    if (e.statusCode === 401 || e.statusCode === 404) {
      throw userError(
        `model ${repo} not found on ${opts.endpoint}`,
        opts.token
          ? "check the name (`flashchat models` lists the known ones); if it is private, use a token of an account that can see it"
          : "check the name (`flashchat models` lists the known ones); if it is private, set HF_TOKEN",
        e,
      );
    }
    if (e.statusCode === 403) {
      throw userError(`access to ${repo} was refused (403)`, `check that your token has read access to ${page}`, e);
    }
    if (e.statusCode === 429) {
      throw userError(`${opts.endpoint} is rate-limiting downloads (429)`, "wait a few minutes and run the same command again: it resumes", e);
    }
    throw userError(
      `${opts.endpoint} answered ${e.statusCode} for ${repo}`,
      "the Hub may be having trouble: try again later (downloads resume where they stopped)",
      e,
    );
  }
  if (isNetworkError(e)) {
    throw userError(
      `cannot reach ${opts.endpoint}: ${describeNetworkError(e)}`,
      "check your network connection (and HF_ENDPOINT if you use a mirror); run the same command again to resume",
      e,
    );
  }
  throw e;
}

function isNetworkError(e: unknown): boolean {
  if (!(e instanceof Error)) return typeof e === "string";
  const code = (e as { code?: string }).code ?? "";
  return (
    e instanceof TypeError ||
    /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EPIPE|ConnectionRefused|ConnectionClosed|FailedToOpenSocket|UND_ERR)/.test(code) ||
    /fetch failed|socket|network|connect|connection|timed out/i.test(e.message) ||
    e instanceof NetworkInterruption
  );
}

/** A UserError carrying the failure behind it (shown with --verbose). */
function userError(message: string, hint?: string, cause?: unknown): UserError {
  const e = new UserError(message, hint);
  if (cause !== undefined) e.cause = cause;
  return e;
}

const describeNetworkError = (e: unknown) =>
  e instanceof Error ? ((e as { code?: string }).code ?? e.message) : String(e);

/** A transfer that ended early or failed mid-way: retried (and resumed) by downloadSnapshot. */
class NetworkInterruption extends Error {
  override name = "NetworkInterruption";
}

/** The server answered a resume request (Range) with the whole file. */
class RangeNotSupported extends NetworkInterruption {
  override name = "RangeNotSupported";
}

function checkToken(opts: HubOptions): string | undefined {
  if (opts.token && !opts.token.startsWith("hf_")) {
    throw userError(
      `the token from ${opts.tokenSource ?? "HF_TOKEN"} does not look like a Hugging Face token (they start with hf_)`,
      "copy a token from https://huggingface.co/settings/tokens, or unset HF_TOKEN for public models",
    );
  }
  return opts.token;
}

function requireOnline(opts: HubOptions, repo: string): void {
  if (opts.offline) {
    throw userError(
      `${repo} is not (completely) in the Hugging Face cache and HF_HUB_OFFLINE is set`,
      `unset HF_HUB_OFFLINE to download it, or point MODEL_PATH at a local copy`,
    );
  }
}

/**
 * Ask the Hub which commit `revision` is and which of its files the model needs. Small files
 * (config.json, the safetensors index) are fetched to narrow the list to the shards the index names.
 */
export async function loadRemoteSnapshot(repo: string, opts: HubOptions, revision = "main"): Promise<RemoteSnapshot> {
  requireOnline(opts, repo);
  const accessToken = checkToken(opts);
  const common = { hubUrl: opts.endpoint, accessToken, fetch: opts.fetch };
  try {
    const { listFiles, modelInfo } = await loadHubClient();
    const info = await modelInfo({ ...common, name: repo, revision, additionalFields: ["sha"] });
    const commit = (info as { sha?: string }).sha;
    if (!commit || !/^[0-9a-f]{40}$/.test(commit)) throw userError(`${opts.endpoint} gave no commit id for ${repo}@${revision}`);
    const files: RemoteFile[] = [];
    for await (const entry of listFiles({ ...common, repo, revision: commit, recursive: false })) {
      if (entry.type !== "file" || !isNeededFile(entry.path)) continue;
      const sha256 = entry.lfs?.oid;
      files.push({
        path: entry.path,
        sizeBytes: entry.lfs?.size ?? entry.size,
        etag: sha256 ?? entry.oid!,
        sha256,
        gitOid: sha256 ? undefined : entry.oid,
      });
    }
    if (!files.some((f) => f.path === "config.json")) {
      throw userError(`${repo} has no config.json: it is not a model checkpoint flashchat can use`);
    }
    const shards = files.filter((f) => f.path.endsWith(".safetensors"));
    if (shards.length === 0) {
      throw userError(`${repo} has no .safetensors weights`, "flashchat reads safetensors checkpoints (MLX or Hugging Face format)");
    }
    const snapshot: RemoteSnapshot = { repo, commit, files, config: {} };
    // config.json first (it is tiny): it describes the model before anything large is fetched; kept in
    // memory (from the cache when it is there) so that planning writes nothing
    snapshot.config = parseJson(await readRemoteText(snapshot, files.find((f) => f.path === "config.json")!, opts), repo, "config.json");
    const index = files.find((f) => f.path === "model.safetensors.index.json");
    if (index) {
      const map = parseJson(await readRemoteText(snapshot, index, opts), repo, index.path) as { weight_map?: Record<string, string> };
      const named = new Set(Object.values(map.weight_map ?? {}));
      snapshot.files = files.filter((f) => !f.path.endsWith(".safetensors") || named.has(f.path));
      const missing = [...named].filter((n) => !files.some((f) => f.path === n));
      if (missing.length) throw userError(`${repo}: the safetensors index names shards the repo does not have: ${missing.join(", ")}`);
    }
    return snapshot;
  } catch (e) {
    explainHubError(e, repo, opts);
  }
}

function parseJson(text: string, repo: string, path: string): Record<string, any> {
  try {
    return JSON.parse(text);
  } catch {
    throw userError(`${path} of ${repo} is not valid JSON`, "the repo may be broken; check it on the Hub");
  }
}

/** Content of a small file of the snapshot: from the cache when complete there, else fetched (not stored). */
async function readRemoteText(snapshot: RemoteSnapshot, file: RemoteFile, opts: HubOptions): Promise<string> {
  const blob = join(repoCacheDir(opts.cacheDir, snapshot.repo), "blobs", file.etag);
  if (sizeOf(blob) === file.sizeBytes) return readFileSync(blob, "utf8");
  const { downloadFile } = await loadHubClient();
  const got = await downloadFile({ repo: snapshot.repo, path: file.path, revision: snapshot.commit, hubUrl: opts.endpoint, accessToken: opts.token, fetch: opts.fetch, xet: false });
  if (!got) throw userError(`${file.path} is listed in ${snapshot.repo} but the Hub cannot serve it`, "try again later");
  const bytes = new Uint8Array(await got.arrayBuffer());
  if (bytes.length !== file.sizeBytes) throw new NetworkInterruption(`${file.path}: got ${bytes.length} of ${file.sizeBytes} bytes`);
  const h = new Bun.CryptoHasher(file.sha256 ? "sha256" : "sha1");
  if (!file.sha256) h.update(`blob ${file.sizeBytes}\0`);
  checkDigest(snapshot, file, h.update(bytes).digest("hex"));
  return new TextDecoder().decode(bytes);
}

/** Throw when a file's hash is not what the Hub listed (no-op when the Hub gave none). */
function checkDigest(snapshot: RemoteSnapshot, file: RemoteFile, digest: string): void {
  const want = file.sha256 ?? file.gitOid;
  if (want && digest !== want) {
    throw userError(
      `${file.path} of ${snapshot.repo} is corrupt: its ${file.sha256 ? "sha256" : "git hash"} is ${digest}, the Hub says ${want}`,
      "the damaged file was deleted; run the same command again to fetch it anew",
    );
  }
}

/** What is already in the cache for this snapshot, and what is left to fetch. No network. */
export function planDownload(snapshot: RemoteSnapshot, cacheDir: string): DownloadPlan {
  const repoDir = repoCacheDir(cacheDir, snapshot.repo);
  const snapshotDir = join(repoDir, "snapshots", snapshot.commit);
  let totalBytes = 0;
  let downloadBytes = 0;
  const files = snapshot.files.map((file) => {
    totalBytes += file.sizeBytes;
    const blob = join(repoDir, "blobs", file.etag);
    const pointer = join(snapshotDir, file.path);
    let state: FileState = "missing";
    let haveBytes = 0;
    if (sizeOf(blob) === file.sizeBytes) {
      state = sizeOf(pointer) === file.sizeBytes ? "present" : "blob";
      haveBytes = file.sizeBytes;
    } else {
      const part = sizeOf(`${blob}.incomplete`);
      if (part > 0 && part <= file.sizeBytes) {
        state = "partial";
        haveBytes = part;
      }
    }
    downloadBytes += file.sizeBytes - haveBytes;
    return { file, state, haveBytes };
  });
  return { snapshot, repoDir, snapshotDir, files, totalBytes, downloadBytes };
}

export interface DownloadOptions {
  /** Files fetched at once (default 4). */
  concurrency?: number;
  /** Retries of one file after a network failure, resuming each time (default 5). */
  retries?: number;
  /** First wait between retries, doubled each time (default 1000 ms). */
  retryDelayMs?: number;
  /** Skip the free-disk check (tests). */
  skipDiskCheck?: boolean;
  /** Draw no progress bar. */
  quietProgress?: boolean;
}

/**
 * Fetch every file of the plan that is not in the cache yet, resuming partial files, verifying size and
 * hash, and linking them into snapshots/COMMIT; then point refs/main at the commit. Returns the snapshot folder.
 */
export async function downloadSnapshot(plan: DownloadPlan, opts: HubOptions, dl: DownloadOptions = {}, revision = "main"): Promise<string> {
  const todo = plan.files.filter((f) => f.state !== "present");
  if (todo.length) {
    requireOnline(opts, plan.snapshot.repo);
    if (!dl.skipDiskCheck) checkFreeDisk(plan.repoDir, plan.downloadBytes, "the download", "free some space, or move the Hugging Face cache (HF_HOME / HF_HUB_CACHE) or ARTIFACTS_DIR to a bigger disk");
    await downloadFiles(plan, todo, opts, dl);
  }
  if (revision !== plan.snapshot.commit) {
    const ref = join(plan.repoDir, "refs", revision);
    if (!existsSync(ref) || readFileSync(ref, "utf8").trim() !== plan.snapshot.commit) writeFileAtomic(ref, plan.snapshot.commit);
  }
  return plan.snapshotDir;
}

async function downloadFiles(plan: DownloadPlan, todo: DownloadPlan["files"], opts: HubOptions, dl: DownloadOptions): Promise<void> {
  const total = todo.reduce((s, f) => s + f.file.sizeBytes, 0);
  const fetching = todo.filter((f) => f.state !== "blob").length;
  const progress = dl.quietProgress
    ? { add() {}, skip() {}, done() {} }
    : createByteProgress({ label: `download ${plan.snapshot.repo}`, totalBytes: total });
  if (!dl.quietProgress && fetching) logger.info(`downloading ${fetching} file${fetching === 1 ? "" : "s"} of ${plan.snapshot.repo} into ${plan.repoDir}`);
  const queue = [...todo].sort((a, b) => a.file.sizeBytes - b.file.sizeBytes);
  const worker = async () => {
    for (let item = queue.shift(); item; item = queue.shift()) await downloadOne(plan, item.file, opts, dl, progress);
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(dl.concurrency ?? 4, queue.length)) }, worker));
  } catch (e) {
    queue.length = 0;
    explainHubError(e, plan.snapshot.repo, opts);
  } finally {
    progress.done();
  }
}

async function downloadOne(
  plan: DownloadPlan,
  file: RemoteFile,
  opts: HubOptions,
  dl: DownloadOptions,
  progress: { add(n: number): void; skip(n: number): void },
): Promise<void> {
  const blob = join(plan.repoDir, "blobs", file.etag);
  const pointer = join(plan.snapshotDir, file.path);
  mkdirSync(dirname(blob), { recursive: true });
  if (sizeOf(blob) !== file.sizeBytes) {
    const incomplete = `${blob}.incomplete`;
    let have = Math.max(0, sizeOf(incomplete));
    if (have > file.sizeBytes) {
      rmSync(incomplete, { force: true });
      have = 0;
    }
    const newHasher = () => {
      const h = new Bun.CryptoHasher(file.sha256 ? "sha256" : "sha1");
      if (!file.sha256) h.update(`blob ${file.sizeBytes}\0`);
      return h;
    };
    let hasher = newHasher();
    if (have > 0) {
      for await (const chunk of createReadStream(incomplete, { end: have - 1, highWaterMark: 1 << 20 })) hasher.update(chunk as Buffer);
      progress.skip(have);
      logger.debug(`resuming ${file.path} at ${formatBytes(have)}`);
    }
    const retries = dl.retries ?? 5;
    for (let attempt = 0; ; attempt++) {
      try {
        have = await fetchInto(plan, file, incomplete, have, hasher, opts, progress);
        break;
      } catch (e) {
        have = Math.max(0, sizeOf(incomplete));
        const retriable = e instanceof NetworkInterruption || isNetworkError(e) || (isHubApiError(e) && e.statusCode >= 500);
        if (!retriable || attempt >= retries) {
          if (e instanceof NetworkInterruption) {
            throw userError(
              `download of ${file.path} stopped at ${formatBytes(have)} of ${formatBytes(file.sizeBytes)}: ${e.message}`,
              "run the same command again: it resumes where it stopped",
            );
          }
          throw e;
        }
        if (e instanceof RangeNotSupported) {
          // the server cannot continue a partial file: start this one over
          rmSync(incomplete, { force: true });
          hasher = newHasher();
          have = 0;
        }
        const waitMs = (dl.retryDelayMs ?? 1000) * 2 ** attempt;
        logger.warn(`${file.path}: ${e instanceof Error ? e.message : String(e)}; retrying in ${(waitMs / 1000).toFixed(1)}s from ${formatBytes(have)}`);
        await Bun.sleep(waitMs);
      }
    }
    try {
      checkDigest(plan.snapshot, file, hasher.digest("hex"));
    } catch (e) {
      rmSync(incomplete, { force: true });
      throw e;
    }
    renameSync(incomplete, blob);
  } else {
    progress.skip(file.sizeBytes);
  }
  linkPointer(blob, pointer);
}

/** Append the rest of the file to `incomplete`, hashing as it goes; returns the bytes now present. */
async function fetchInto(
  plan: DownloadPlan,
  file: RemoteFile,
  incomplete: string,
  have: number,
  hasher: Bun.CryptoHasher,
  opts: HubOptions,
  progress: { add(n: number): void },
): Promise<number> {
  if (have >= file.sizeBytes) return have;
  let rangeIgnored = false;
  // A server that ignores Range would send the whole file again after our partial one: refuse it.
  const checkedFetch = (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    const res = await (opts.fetch ?? fetch)(input, init);
    const range = new Headers(init?.headers).get("Range");
    if (range && !/^bytes=0-/.test(range) && res.status === 200) {
      rangeIgnored = true;
      await res.body?.cancel();
      throw new NetworkInterruption("the server does not support resuming (Range ignored)");
    }
    return res;
  }) as typeof fetch;
  const { downloadFile } = await loadHubClient();
  const blob = await downloadFile({
    repo: plan.snapshot.repo,
    path: file.path,
    revision: plan.snapshot.commit,
    hubUrl: opts.endpoint,
    accessToken: opts.token,
    fetch: checkedFetch,
    xet: false,
  });
  if (!blob) throw userError(`${file.path} is listed in ${plan.snapshot.repo} but the Hub cannot serve it`, "try again later");
  if (blob.size !== file.sizeBytes) {
    throw userError(`${file.path}: the Hub lists ${file.sizeBytes} bytes but serves ${blob.size}`, "try again later; if it persists, report it to the repo owners");
  }
  const fd = openSync(incomplete, "a");
  try {
    const body = have > 0 ? blob.slice(have).stream() : blob.stream();
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        if (have + chunk.length > file.sizeBytes) throw new NetworkInterruption(`the server sent more than ${file.sizeBytes} bytes`);
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        hasher.update(chunk);
        have += chunk.length;
        progress.add(chunk.length);
      }
    } catch (e) {
      if (rangeIgnored) throw new RangeNotSupported("the server does not support resuming (Range ignored)");
      if (e instanceof NetworkInterruption) throw e;
      // errors inside the body stream reach us as strings or generic errors: a broken transfer
      throw new NetworkInterruption(e instanceof Error ? e.message : String(e));
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (have < file.sizeBytes) throw new NetworkInterruption("the connection closed early");
  return have;
}

/** snapshots/REV/path -> ../../blobs/ETAG, relative like huggingface_hub's, replacing whatever was there. */
function linkPointer(blob: string, pointer: string): void {
  mkdirSync(dirname(pointer), { recursive: true });
  const target = relative(dirname(pointer), blob);
  try {
    if (lstatSync(pointer).isSymbolicLink() && readlinkSync(pointer) === target) return;
    rmSync(pointer, { force: true });
  } catch {
    // no pointer yet
  }
  symlinkSync(target, pointer);
}

/** Size of a file (following symlinks), -1 when it does not exist. */
function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

export interface LocalCheckpointCheck {
  ok: boolean;
  /** What is missing or damaged, one entry per problem. */
  problems: string[];
  /** Bytes of the weight files present. */
  sizeBytes: number;
  hasTokenizer: boolean;
}

/**
 * Offline completeness check of a checkpoint folder (a cache snapshot or any local folder): config.json,
 * every shard the index names, each shard exactly as long as its own header says. Fast: reads headers only.
 */
export function checkLocalCheckpoint(dir: string): LocalCheckpointCheck {
  const problems: string[] = [];
  let sizeBytes = 0;
  if (!dir || !existsSync(dir)) return { ok: false, problems: [`${dir || "checkpoint folder"} does not exist`], sizeBytes, hasTokenizer: false };
  if (!existsSync(join(dir, "config.json"))) problems.push("config.json is missing");
  let shards: string[];
  const indexPath = join(dir, "model.safetensors.index.json");
  if (existsSync(indexPath)) {
    try {
      const index = JSON.parse(readFileSync(indexPath, "utf8")) as { weight_map?: Record<string, string> };
      shards = [...new Set(Object.values(index.weight_map ?? {}))].sort();
    } catch {
      problems.push("model.safetensors.index.json is not valid JSON");
      shards = [];
    }
  } else {
    shards = readdirSync(dir).filter((n) => n.endsWith(".safetensors")).sort();
    if (shards.length === 0) problems.push("no .safetensors files");
  }
  for (const shard of shards) {
    const p = join(dir, shard);
    const have = sizeOf(p);
    if (have < 0) {
      problems.push(`${shard} is missing`);
      continue;
    }
    const want = safetensorsExpectedSize(p);
    if (want === null) problems.push(`${shard} has no valid safetensors header`);
    else if (want !== have) problems.push(`${shard} is ${have} bytes, its header says ${want}`);
    else sizeBytes += have;
  }
  const hasTokenizer = existsSync(join(dir, "tokenizer.json"));
  return { ok: problems.length === 0, problems, sizeBytes, hasTokenizer };
}

/** 8 + header length + end of the last tensor, from the header alone; null if the header is unreadable. */
function safetensorsExpectedSize(path: string): number | null {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const lenBuf = Buffer.alloc(8);
    if (readAt(fd, lenBuf, 0) !== 8) return null;
    const n = Number(lenBuf.readBigUInt64LE(0));
    if (n <= 1 || n > 100e6) return null;
    const head = Buffer.alloc(n);
    if (readAt(fd, head, 8) !== n) return null;
    const header = JSON.parse(head.toString("utf8")) as Record<string, { data_offsets?: [number, number] }>;
    let end = 0;
    for (const [k, v] of Object.entries(header)) if (k !== "__metadata__" && v.data_offsets) end = Math.max(end, v.data_offsets[1]);
    return 8 + n + end;
  } catch {
    return null;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function readAt(fd: number, buf: Buffer, pos: number): number {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** Point refs/main at `commit` (used when a snapshot is found complete offline). */
export function writeRef(repoDir: string, commit: string, revision = "main"): void {
  writeFileAtomic(join(repoDir, "refs", revision), commit);
}

/** Blobs of a repo in the cache (for `models`: what is downloaded). */
export function cachedRepoBytes(cacheDir: string, repo: string): number {
  const blobs = join(repoCacheDir(cacheDir, repo), "blobs");
  if (!existsSync(blobs)) return 0;
  let total = 0;
  for (const name of readdirSync(blobs)) total += Math.max(0, sizeOf(join(blobs, name)));
  return total;
}
