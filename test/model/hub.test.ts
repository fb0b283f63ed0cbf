import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "pathe";
import { checkFreeDisk } from "../../lib/fs.ts";
import { findHfSnapshot } from "../../lib/model/hf-cache.ts";
import { UserError } from "../../lib/errors.ts";
import {
  checkLocalCheckpoint,
  downloadSnapshot,
  type HubOptions,
  isNeededFile,
  loadRemoteSnapshot,
  planDownload,
  resolveHubOptions,
} from "../../lib/model/hub.ts";
import { createMockHub, type MockHub } from "../helpers/mock-hub.ts";

const FIXTURE = resolve(import.meta.dir, "../fixtures/tiny-qwen35-moe");
const REPO = "test-org/tiny-qwen35-moe";
const SHARD1 = "model-00001-of-00002.safetensors";
const NEEDED = ["config.json", SHARD1, "model-00002-of-00002.safetensors", "model.safetensors.index.json"];

let hub: MockHub;
let tmp: string;
const fast = { retries: 0, retryDelayMs: 0, quietProgress: true };

beforeAll(() => {
  hub = createMockHub({
    repos: {
      [REPO]: FIXTURE,
      "test-org/private": { dir: FIXTURE, private: true },
      "test-org/gated": { dir: FIXTURE, gated: true, grantedTokens: ["hf_granted"] },
      "test-org/xet": { dir: FIXTURE, xet: true },
    },
    validTokens: ["hf_good", "hf_granted"],
  });
});
afterAll(() => hub.stop());
afterEach(() => {
  for (const k of Object.keys(hub.faults)) delete hub.faults[k as keyof typeof hub.faults];
  hub.requests.length = 0;
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function options(extra: Partial<HubOptions> = {}): HubOptions {
  tmp = mkdtempSync(join(tmpdir(), "flashchat-hub-"));
  return { endpoint: hub.url, cacheDir: join(tmp, "hub"), ...extra };
}

async function download(opts: HubOptions, dl = fast, repo = REPO) {
  const snap = await loadRemoteSnapshot(repo, opts);
  return downloadSnapshot(planDownload(snap, opts.cacheDir), opts, dl);
}

async function userErrorOf(p: Promise<unknown>): Promise<UserError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof UserError) return e;
    throw e;
  }
  throw new Error("expected a UserError");
}

const sha256File = (p: string) => new Bun.CryptoHasher("sha256").update(readFileSync(p)).digest("hex");

describe("download", () => {
  test("fetches only the needed files into the huggingface_hub cache layout", async () => {
    const opts = options();
    const dir = await download(opts);
    const repoDir = join(opts.cacheDir, "models--test-org--tiny-qwen35-moe");
    const commit = hub.commitOf(REPO);
    expect(dir).toBe(join(repoDir, "snapshots", commit));
    expect(readFileSync(join(repoDir, "refs", "main"), "utf8")).toBe(commit);
    for (const f of hub.filesOf(REPO).filter((f) => NEEDED.includes(f.path))) {
      const pointer = join(dir, f.path);
      // relative symlink to blobs/<sha256 for LFS files, git blob id otherwise>, as Python writes it
      expect(lstatSync(pointer).isSymbolicLink()).toBe(true);
      expect(readlinkSync(pointer)).toBe(`../../blobs/${f.sha256 ?? f.oid}`);
      expect(readFileSync(pointer)).toEqual(readFileSync(join(FIXTURE, f.path)));
    }
    // README, expected/ and hf-bf16/ are not part of what a model needs
    expect(existsSync(join(dir, "README.md"))).toBe(false);
    expect(existsSync(join(dir, "hf-bf16"))).toBe(false);
    expect(findHfSnapshot(opts.cacheDir, REPO)).toBe(dir);
    expect(checkLocalCheckpoint(dir)).toEqual({ ok: true, problems: [], sizeBytes: statSync(join(FIXTURE, SHARD1)).size + statSync(join(FIXTURE, "model-00002-of-00002.safetensors")).size, hasTokenizer: false });
  });

  test("a Xet-backed repo downloads over plain HTTP, resumable, and verified like any other", async () => {
    const opts = options();
    const f = hub.filesOf("test-org/xet").find((x) => x.path === SHARD1)!;
    hub.faults.cut = { path: SHARD1, bytes: 50_000, times: 1 };
    const dir = await download(opts, { ...fast, retries: 1 }, "test-org/xet");
    expect(sha256File(join(dir, SHARD1))).toBe(f.sha256!);
    expect(readlinkSync(join(dir, SHARD1))).toBe(`../../blobs/${f.sha256}`);
    // the file info came back as Xet's; the bytes were fetched through the resolve URL (redirected to the CDN),
    // and the rest resumed with Range
    expect(hub.downloads().filter((r) => r.path === `/cdn/${f.sha256}`).map((r) => r.range)).toEqual([null, "bytes=50000-383703"]);
    expect(hub.downloads().filter((r) => r.path.endsWith(`/resolve/${hub.commitOf("test-org/xet")}/${SHARD1}`)).length).toBe(2);
  });

  test("a second run downloads nothing", async () => {
    const opts = options();
    await download(opts);
    hub.requests.length = 0;
    const snap = await loadRemoteSnapshot(REPO, opts);
    const plan = planDownload(snap, opts.cacheDir);
    expect(plan.downloadBytes).toBe(0);
    expect(plan.files.map((f) => f.state)).toEqual(plan.files.map(() => "present"));
    await downloadSnapshot(plan, opts, fast);
    expect(hub.downloads()).toEqual([]);
  });

  test("an interrupted download resumes from the partial file", async () => {
    const opts = options();
    hub.faults.cut = { path: SHARD1, bytes: 100_000, times: 1 };
    const err = await userErrorOf(download(opts));
    expect(err.message).toContain(`${SHARD1} stopped at 100 KB`);
    expect(err.hint).toContain("resumes");
    const f = hub.filesOf(REPO).find((x) => x.path === SHARD1)!;
    const partial = join(opts.cacheDir, "models--test-org--tiny-qwen35-moe", "blobs", `${f.sha256}.incomplete`);
    expect(statSync(partial).size).toBe(100_000);

    hub.requests.length = 0;
    const snap = await loadRemoteSnapshot(REPO, opts);
    const plan = planDownload(snap, opts.cacheDir);
    expect(plan.files.find((x) => x.file.path === SHARD1)).toMatchObject({ state: "partial", haveBytes: 100_000 });
    const dir = await downloadSnapshot(plan, opts, fast);
    expect(hub.downloads().filter((r) => r.path === `/cdn/${f.sha256}`).map((r) => r.range)).toEqual(["bytes=100000-383703"]);
    expect(sha256File(join(dir, SHARD1))).toBe(f.sha256!);
    expect(existsSync(partial)).toBe(false);
  });

  test("a dropped connection is retried within the same run, resuming", async () => {
    const opts = options();
    hub.faults.cut = { path: SHARD1, bytes: 5000, times: 2 };
    const dir = await download(opts, { ...fast, retries: 3 });
    const f = hub.filesOf(REPO).find((x) => x.path === SHARD1)!;
    expect(hub.downloads().filter((r) => r.path === `/cdn/${f.sha256}`).map((r) => r.range)).toEqual([null, "bytes=5000-383703", "bytes=10000-383703"]);
    expect(sha256File(join(dir, SHARD1))).toBe(f.sha256!);
  });

  test("a server that ignores Range makes the file start over, not grow", async () => {
    const opts = options();
    hub.faults.cut = { path: SHARD1, bytes: 5000, times: 1 };
    hub.faults.ignoreRange = { path: SHARD1 };
    const dir = await download(opts, { ...fast, retries: 2 });
    const f = hub.filesOf(REPO).find((x) => x.path === SHARD1)!;
    expect(sha256File(join(dir, SHARD1))).toBe(f.sha256!);
  });

  test("a corrupted file is caught by its sha256, deleted, and never linked", async () => {
    const opts = options();
    hub.faults.corrupt = { path: SHARD1 };
    const err = await userErrorOf(download(opts));
    expect(err.message).toMatch(new RegExp(`${SHARD1} of ${REPO} is corrupt: its sha256 is [0-9a-f]{64}, the Hub says`));
    const repoDir = join(opts.cacheDir, "models--test-org--tiny-qwen35-moe");
    const f = hub.filesOf(REPO).find((x) => x.path === SHARD1)!;
    expect(existsSync(join(repoDir, "blobs", f.sha256!))).toBe(false);
    expect(existsSync(join(repoDir, "blobs", `${f.sha256}.incomplete`))).toBe(false);
    expect(existsSync(join(repoDir, "snapshots", hub.commitOf(REPO), SHARD1))).toBe(false);
  });

  test("a corrupted small (non-LFS) file is caught by its git blob hash", async () => {
    const opts = options();
    hub.faults.corrupt = { path: "config.json" };
    const err = await userErrorOf(download(opts));
    expect(err.message).toContain("config.json");
    expect(err.message).toContain("git hash");
  });

  test("a truncated blob in the cache is found offline and fetched again", async () => {
    const opts = options();
    const dir = await download(opts);
    const f = hub.filesOf(REPO).find((x) => x.path === SHARD1)!;
    truncateSync(join(dir, SHARD1), 50_000);
    const check = checkLocalCheckpoint(dir);
    expect(check.ok).toBe(false);
    expect(check.problems).toEqual([`${SHARD1} is 50000 bytes, its header says ${f.size}`]);
    const plan = planDownload(await loadRemoteSnapshot(REPO, opts), opts.cacheDir);
    expect(plan.downloadBytes).toBe(f.size);
    await downloadSnapshot(plan, opts, fast);
    expect(checkLocalCheckpoint(dir).ok).toBe(true);
  });
});

describe("errors", () => {
  test("a missing repo says so (anonymous: the Hub answers 401)", async () => {
    const err = await userErrorOf(loadRemoteSnapshot("test-org/nope", options()));
    expect(err.message).toBe(`model test-org/nope not found on ${hub.url}`);
    expect(err.hint).toContain("HF_TOKEN");
  });

  test("a missing repo with a valid token (404)", async () => {
    const err = await userErrorOf(loadRemoteSnapshot("test-org/nope", options({ token: "hf_good", tokenSource: "HF_TOKEN" })));
    expect(err.message).toBe(`model test-org/nope not found on ${hub.url}`);
    expect(err.hint).toContain("a token of an account that can see it");
  });

  test("a private repo is found with a valid token", async () => {
    const snap = await loadRemoteSnapshot("test-org/private", options({ token: "hf_good" }));
    expect(snap.commit).toBe(hub.commitOf("test-org/private"));
    expect(hub.requests.every((r) => r.auth === "Bearer hf_good")).toBe(true);
  });

  test("a bad token (401) names where it came from", async () => {
    const err = await userErrorOf(loadRemoteSnapshot(REPO, options({ token: "hf_expired", tokenSource: "HF_TOKEN" })));
    expect(err.message).toBe(`Hugging Face rejected the token from HF_TOKEN (401) while opening ${REPO}`);
    expect(err.hint).toContain("settings/tokens");
  });

  test("a token that is not a Hugging Face token", async () => {
    const err = await userErrorOf(loadRemoteSnapshot(REPO, options({ token: "abc", tokenSource: "HF_TOKEN" })));
    expect(err.message).toContain("does not look like a Hugging Face token");
  });

  test("a gated repo says where to accept its conditions", async () => {
    for (const token of [undefined, "hf_good"]) {
      const err = await userErrorOf(loadRemoteSnapshot("test-org/gated", options({ token })));
      expect(err.message).toBe("test-org/gated is a gated model: its owners require you to accept their conditions first");
      expect(err.hint).toContain(`${hub.url}/test-org/gated`);
      rmSync(tmp, { recursive: true, force: true });
    }
    expect((await loadRemoteSnapshot("test-org/gated", options({ token: "hf_granted" }))).files.length).toBe(4);
  });

  test("a server error is retried, then explained", async () => {
    const opts = options();
    const snap = await loadRemoteSnapshot(REPO, opts);
    hub.faults.status = 503;
    const err = await userErrorOf(downloadSnapshot(planDownload(snap, opts.cacheDir), opts, { ...fast, retries: 1 }));
    expect(err.message).toBe(`${hub.url} answered 503 for ${REPO}`);
  });

  test("an unreachable hub is a network error", async () => {
    const dead = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    const endpoint = dead.url.href.replace(/\/$/, "");
    dead.stop(true);
    const err = await userErrorOf(loadRemoteSnapshot(REPO, options({ endpoint })));
    expect(err.message).toStartWith(`cannot reach ${endpoint}`);
    expect(err.hint).toContain("HF_ENDPOINT");
  });

  test("offline mode never touches the network", async () => {
    const err = await userErrorOf(loadRemoteSnapshot(REPO, options({ offline: true })));
    expect(err.message).toContain("HF_HUB_OFFLINE");
    expect(hub.requests).toEqual([]);
  });

  test("not enough free disk stops before anything is written", () => {
    tmp = mkdtempSync(join(tmpdir(), "flashchat-hub-"));
    expect(() => checkFreeDisk(join(tmp, "a", "b"), 1e18, "the download")).toThrow(/not enough free disk for the download: it needs 1000 PB/);
    expect(() => checkFreeDisk(tmp, 1000, "the download")).not.toThrow();
  });
});

describe("cache shared with Python's huggingface_hub", () => {
  test("a snapshot laid out as huggingface_hub writes it is complete offline and needs no download", async () => {
    const opts = options();
    // the layout huggingface_hub creates: blobs named by etag, relative symlinks, refs/main
    const repoDir = join(opts.cacheDir, "models--test-org--tiny-qwen35-moe");
    const commit = hub.commitOf(REPO);
    mkdirSync(join(repoDir, "blobs"), { recursive: true });
    mkdirSync(join(repoDir, "snapshots", commit), { recursive: true });
    mkdirSync(join(repoDir, "refs"), { recursive: true });
    writeFileSync(join(repoDir, "refs", "main"), commit);
    for (const f of hub.filesOf(REPO).filter((x) => NEEDED.includes(x.path))) {
      copyFileSync(join(FIXTURE, f.path), join(repoDir, "blobs", f.sha256 ?? f.oid));
      symlinkSync(`../../blobs/${f.sha256 ?? f.oid}`, join(repoDir, "snapshots", commit, f.path));
    }
    const dir = findHfSnapshot(opts.cacheDir, REPO);
    expect(dir).toBe(join(repoDir, "snapshots", commit));
    expect(checkLocalCheckpoint(dir).ok).toBe(true);
    // and online, the plan agrees: nothing to fetch
    const plan = planDownload(await loadRemoteSnapshot(REPO, opts), opts.cacheDir);
    expect(plan.downloadBytes).toBe(0);
    expect(hub.downloads()).toEqual([]);
  });

  test("a blob without its snapshot link is linked, not fetched", async () => {
    const opts = options();
    const dir = await download(opts);
    rmSync(join(dir, SHARD1));
    hub.requests.length = 0;
    const plan = planDownload(await loadRemoteSnapshot(REPO, opts), opts.cacheDir);
    expect(plan.files.find((f) => f.file.path === SHARD1)!.state).toBe("blob");
    expect(plan.downloadBytes).toBe(0);
    await downloadSnapshot(plan, opts, fast);
    expect(hub.downloads()).toEqual([]);
    expect(checkLocalCheckpoint(dir).ok).toBe(true);
  });
});

describe("settings", () => {
  test("HF_ENDPOINT, HF_TOKEN, the stored login token and HF_HUB_OFFLINE", () => {
    tmp = mkdtempSync(join(tmpdir(), "flashchat-hub-"));
    expect(resolveHubOptions("/c", { HOME: tmp })).toEqual({ endpoint: "https://huggingface.co", token: undefined, tokenSource: undefined, cacheDir: "/c", offline: false });
    expect(resolveHubOptions("/c", { HOME: tmp, HF_ENDPOINT: "http://mirror.local/", HF_TOKEN: "hf_x", HF_HUB_OFFLINE: "1" })).toEqual({
      endpoint: "http://mirror.local",
      token: "hf_x",
      tokenSource: "HF_TOKEN",
      cacheDir: "/c",
      offline: true,
    });
    mkdirSync(join(tmp, "hfhome"), { recursive: true });
    writeFileSync(join(tmp, "hfhome", "token"), "hf_stored\n");
    expect(resolveHubOptions("/c", { HOME: tmp, HF_HOME: join(tmp, "hfhome") })).toMatchObject({ token: "hf_stored", tokenSource: join(tmp, "hfhome", "token") });
  });

  test("which files a model needs", () => {
    for (const p of ["config.json", "model-00001-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"]) {
      expect(isNeededFile(p)).toBe(true);
    }
    for (const p of ["README.md", "hf-bf16/config.json", ".gitattributes", "pytorch_model.bin", "expected/logits.f32", "images/x.png"]) {
      expect(isNeededFile(p)).toBe(false);
    }
  });
});
