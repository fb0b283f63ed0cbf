// Setup of a model served by a local Hub (the fixture checkpoint): plan, consent, download, extract, repack,
// resume, and a second run that does nothing. The engine step is covered by the demo end-to-end test.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "pathe";
import { resolveModelTarget } from "../../lib/model/target.ts";
import { loadFlashchatConfig } from "../../lib/config/index.ts";
import type { ResolvedConfig } from "../../lib/config/schema.ts";
import { UserError } from "../../lib/errors.ts";
import { inspectArtifacts } from "../../lib/model/artifacts.ts";
import { bundledQwenTokenizerDir } from "../../lib/model/test-model.ts";
import { ensureReady, runSetup, type SetupOptions } from "../../lib/setup/index.ts";
import { xdgEnv } from "../helpers/cli.ts";
import { createMockHub, type MockHub } from "../helpers/mock-hub.ts";

const FIXTURE = resolve(import.meta.dir, "../fixtures/tiny-qwen35-moe");
const REPO = "test-org/tiny-qwen35-moe";
const SHARD1 = "model-00001-of-00002.safetensors";

let hub: MockHub;
let llama: string;
let withTokenizer: string;
let tmp: string;
let env: Record<string, string>;

beforeAll(() => {
  llama = mkdtempSync(join(tmpdir(), "flashchat-llama-"));
  for (const f of readdirSync(FIXTURE)) if (f.endsWith(".safetensors") || f.endsWith(".json")) copyFileSync(join(FIXTURE, f), join(llama, f));
  writeFileSync(join(llama, "config.json"), JSON.stringify({ model_type: "llama", hidden_size: 128, num_hidden_layers: 4 }));
  withTokenizer = mkdtempSync(join(tmpdir(), "flashchat-tok-"));
  for (const f of readdirSync(FIXTURE)) if (f.endsWith(".safetensors") || f.endsWith(".json")) copyFileSync(join(FIXTURE, f), join(withTokenizer, f));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(bundledQwenTokenizerDir(), f), join(withTokenizer, f));
  hub = createMockHub({
    repos: {
      [REPO]: FIXTURE,
      "test-org/bf16": join(FIXTURE, "hf-bf16"),
      "test-org/llama": llama,
      "test-org/private": { dir: FIXTURE, private: true },
      "test-org/with-tokenizer": withTokenizer,
    },
    validTokens: ["hf_secret"],
  });
});
afterAll(() => {
  hub.stop();
  rmSync(llama, { recursive: true, force: true });
  rmSync(withTokenizer, { recursive: true, force: true });
});
afterEach(() => {
  for (const k of Object.keys(hub.faults)) delete hub.faults[k as keyof typeof hub.faults];
  hub.requests.length = 0;
  rmSync(tmp, { recursive: true, force: true });
});

async function config(model: string, extra: Record<string, string> = {}): Promise<ResolvedConfig> {
  tmp = mkdtempSync(join(tmpdir(), "flashchat-setup-"));
  env = { ...xdgEnv(tmp, { PATH: process.env.PATH ?? "" }), HF_ENDPOINT: hub.url };
  return loadFlashchatConfig({ env, cwd: tmp, overrides: { MODEL_REPO: model, ...extra } });
}

const opts = (o: SetupOptions = {}): SetupOptions => ({ engine: false, env, interactive: false, download: { retries: 0, retryDelayMs: 0 }, ...o });

async function userErrorOf(p: Promise<unknown>): Promise<UserError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof UserError) return e;
    throw e;
  }
  throw new Error("expected a UserError");
}

/** Every file under `dir` (relative), to compare before and after. */
function tree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => !d.isDirectory())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
    .sort();
}

describe("a model from the Hub", () => {
  test("downloads, extracts and repacks; a second run does no work and no network", async () => {
    const cfg = await config(REPO);
    const first = await runSetup(cfg, opts({ yes: true }));
    expect(first.ran).toEqual(["download", "extract", "repack"]);
    const commit = hub.commitOf(REPO);
    expect(first.ready.checkpointDir).toBe(join(tmp, "x", "huggingface", "hub", "models--test-org--tiny-qwen35-moe", "snapshots", commit));
    expect(first.ready.artifactsDir).toBe(join(tmp, "d", "flashchat", "models", "test-org--tiny-qwen35-moe"));
    expect(first.ready.expertsDir).toBe(join(first.ready.artifactsDir, "packed_experts"));
    const art = inspectArtifacts(first.ready.artifactsDir);
    expect(art.weightsComplete).toBe(true);
    expect(art.experts.complete).toBe(true);
    expect(art.experts.layersPresent).toEqual([0, 1, 2, 3]);
    expect(first.ready.hasTokenizer).toBe(false);

    hub.requests.length = 0;
    const again = await runSetup(await loadFlashchatConfig({ env, cwd: tmp, overrides: { MODEL_REPO: REPO } }), opts());
    expect(again.ran).toEqual([]);
    expect(hub.requests).toEqual([]);
  });

  test("--yes is needed without a terminal, and the message names it; nothing is written", async () => {
    const cfg = await config(REPO);
    const err = await userErrorOf(runSetup(cfg, opts()));
    expect(err.message).toMatch(/^setting up test-org\/tiny-qwen35-moe needs your consent to download 817 KB and write about [\d.]+ (KB|MB), and there is no terminal to ask on$/);
    expect(err.hint).toBe("re-run with --yes to agree (e.g. flashchat setup --model test-org/tiny-qwen35-moe --yes)");
    expect(tree(join(tmp, "x"))).toEqual([]);
    expect(tree(join(tmp, "d"))).toEqual([]);
  });

  test("declining at the consent screen leaves everything as it was and says how to resume", async () => {
    const cfg = await config(REPO);
    const before = [tree(join(tmp, "x")), tree(join(tmp, "d"))];
    const asked: string[] = [];
    const err = await userErrorOf(
      runSetup(cfg, opts({ interactive: true, confirm: async (q) => (asked.push(q), false) })),
    );
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatch(/^Proceed: download 817 KB and write about/);
    expect(err.message).toBe("setup cancelled: nothing was downloaded or written");
    expect(err.hint).toContain("flashchat setup --model test-org/tiny-qwen35-moe");
    expect([tree(join(tmp, "x")), tree(join(tmp, "d"))]).toEqual(before);
    // only the small metadata the plan is made from (config.json, the index) was read, and kept in memory
    expect(hub.downloads().map((r) => r.path.split("/").pop())).toEqual(["config.json", "model.safetensors.index.json"]);
  });

  test("saying yes at the consent screen runs the setup", async () => {
    const cfg = await config(REPO);
    const r = await runSetup(cfg, opts({ interactive: true, confirm: async () => true }));
    expect(r.ran).toEqual(["download", "extract", "repack"]);
  });

  test("an interrupted setup continues where it stopped", async () => {
    const cfg = await config(REPO);
    hub.faults.cut = { path: SHARD1, bytes: 200_000, times: 1 };
    const err = await userErrorOf(runSetup(cfg, opts({ yes: true })));
    expect(err.message).toContain(`${SHARD1} stopped at 200 KB`);
    hub.requests.length = 0;
    const r = await runSetup(cfg, opts({ yes: true }));
    expect(r.ran).toEqual(["download", "extract", "repack"]);
    const sha = hub.filesOf(REPO).find((f) => f.path === SHARD1)!.sha256;
    expect(hub.downloads().filter((q) => q.path === `/cdn/${sha}`).map((q) => q.range)).toEqual(["bytes=200000-383703"]);
  });

  test("QUANTIZATION=2bit also prepares the 2-bit experts and streams from them", async () => {
    const cfg = await config(REPO, { QUANTIZATION: "2bit" });
    const r = await runSetup(cfg, opts({ yes: true }));
    expect(r.ran).toEqual(["download", "extract", "repack", "repack-2bit"]);
    expect(r.ready.expertsDir).toBe(join(r.ready.artifactsDir, "packed_experts_2bit"));
    expect(inspectArtifacts(r.ready.artifactsDir).experts2bit.complete).toBe(true);
  });

  test("a Hugging Face bf16 repo is quantized by us", async () => {
    const cfg = await config("test-org/bf16");
    const r = await runSetup(cfg, opts({ yes: true }));
    expect(r.plan.format).toBe("hf-bf16");
    expect(r.ran).toEqual(["download", "extract", "repack"]);
    const manifest = JSON.parse(readFileSync(join(r.ready.artifactsDir, "model_weights.json"), "utf8"));
    expect(manifest.source).toMatchObject({ format: "hf-bf16", bits: 4 });
  });

  test("an unsupported architecture stops before anything is downloaded", async () => {
    const cfg = await config("test-org/llama");
    const err = await userErrorOf(runSetup(cfg, opts({ yes: true })));
    expect(err.message).toContain('unsupported architecture: model_type "llama"');
    expect(hub.downloads().filter((r) => r.path.startsWith("/cdn/"))).toEqual([]);
    expect(tree(join(tmp, "x"))).toEqual([]);
  });

  test("EXPERTS_DIR: experts kept elsewhere are checked, never rewritten", async () => {
    const cfg = await config(REPO);
    const first = await runSetup(cfg, opts({ yes: true }));
    const fast = join(tmp, "fast-disk", "packed_experts");
    const empty = await loadFlashchatConfig({ env, cwd: tmp, overrides: { MODEL_REPO: REPO, EXPERTS_DIR: fast } });
    const err = await userErrorOf(runSetup(empty, opts()));
    expect(err.message).toBe(`EXPERTS_DIR ${fast} does not exist`);
    mkdirSync(join(tmp, "fast-disk"), { recursive: true });
    cpSync(join(first.ready.artifactsDir, "packed_experts"), fast, { recursive: true });
    rmSync(join(first.ready.artifactsDir, "packed_experts"), { recursive: true });
    const moved = await runSetup(empty, opts());
    expect(moved.ran).toEqual([]);
    expect(moved.ready.expertsDir).toBe(fast);
  });

  test("HF_HUB_CACHE and HF_TOKEN are honoured", async () => {
    await config(REPO);
    const cache = join(tmp, "elsewhere");
    env = { ...env, HF_HUB_CACHE: cache, HF_TOKEN: "hf_secret" };
    const cfg = await loadFlashchatConfig({ env, cwd: tmp, overrides: { MODEL_REPO: "test-org/private" } });
    const r = await runSetup(cfg, opts({ yes: true }));
    expect(r.ready.checkpointDir).toStartWith(join(cache, "models--test-org--private", "snapshots"));
    expect(hub.requests.filter((q) => !q.path.startsWith("/cdn/")).every((q) => q.auth === "Bearer hf_secret")).toBe(true);
  });

  test("the tokenizer is copied beside the weights, so a prepared model works after its download is deleted", async () => {
    const cfg = await config("test-org/with-tokenizer");
    const first = await runSetup(cfg, opts({ yes: true }));
    expect(first.ready.tokenizerDir).toBe(first.ready.artifactsDir);
    expect(readFileSync(join(first.ready.artifactsDir, "tokenizer.json"))).toEqual(readFileSync(join(withTokenizer, "tokenizer.json")));
    // weights there but the tokenizer copy gone: only the copy is redone
    rmSync(join(first.ready.artifactsDir, "tokenizer.json"));
    const weights = readFileSync(join(first.ready.artifactsDir, "model_weights.bin"));
    const fix = await runSetup(await loadFlashchatConfig({ env, cwd: tmp, overrides: { MODEL_REPO: "test-org/with-tokenizer" } }), opts());
    expect(fix.ran).toEqual(["extract"]);
    expect(readFileSync(join(first.ready.artifactsDir, "model_weights.bin"))).toEqual(weights);
    // the download deleted: nothing to do, no network, the server reads the tokenizer from the artifacts
    rmSync(join(cfg.paths.hfCacheDir, "models--test-org--with-tokenizer"), { recursive: true });
    hub.requests.length = 0;
    const after = await runSetup(await loadFlashchatConfig({ env, cwd: tmp, overrides: { MODEL_REPO: "test-org/with-tokenizer" } }), opts());
    expect(after.ran).toEqual([]);
    expect(hub.requests).toEqual([]);
    expect(after.ready).toMatchObject({ checkpointDir: "", tokenizerDir: first.ready.artifactsDir, hasTokenizer: true });
  });

  test("a missing repo is a clear error", async () => {
    const cfg = await config("test-org/nope");
    const err = await userErrorOf(runSetup(cfg, opts({ yes: true })));
    expect(err.message).toBe(`model test-org/nope not found on ${hub.url}`);
  });

  test("a model already in the cache (Python's layout) is used without any network", async () => {
    const cfg0 = await config(REPO);
    const repoDir = join(cfg0.paths.hfCacheDir, "models--test-org--tiny-qwen35-moe");
    const commit = hub.commitOf(REPO);
    mkdirSync(join(repoDir, "blobs"), { recursive: true });
    mkdirSync(join(repoDir, "snapshots", commit), { recursive: true });
    mkdirSync(join(repoDir, "refs"), { recursive: true });
    writeFileSync(join(repoDir, "refs", "main"), commit);
    for (const f of hub.filesOf(REPO).filter((x) => !x.path.includes("/") && x.path !== "README.md")) {
      copyFileSync(join(FIXTURE, f.path), join(repoDir, "blobs", f.sha256 ?? f.oid));
      symlinkSync(`../../blobs/${f.sha256 ?? f.oid}`, join(repoDir, "snapshots", commit, f.path));
    }
    // lib/model finds the snapshot; setup only extracts and repacks (small writes: no question)
    const cfg = await loadFlashchatConfig({ env, cwd: tmp, overrides: { MODEL_REPO: REPO } });
    expect(resolveModelTarget(cfg).checkpointDir).toBe(join(repoDir, "snapshots", commit));
    const r = await runSetup(cfg, opts());
    expect(r.ran).toEqual(["extract", "repack"]);
    expect(hub.requests).toEqual([]);
  });

  test("--dry-run shows the plan and writes nothing", async () => {
    const cfg = await config(REPO);
    const r = await runSetup(cfg, opts({ dryRun: true }));
    expect(r.ran).toEqual([]);
    expect(r.plan.steps.map((s) => [s.id, s.done])).toEqual([["deps", true], ["download", false], ["extract", false], ["repack", false]]);
    expect(tree(join(tmp, "x"))).toEqual([]);
    expect(tree(join(tmp, "d"))).toEqual([]);
  });
});

describe("ensureReady (what chat, prompt, serve and benchmark call)", () => {
  test("without a terminal it needs --yes; with it, it returns every path the engine and server need", async () => {
    const cfg = await config(REPO);
    const err = await userErrorOf(ensureReady(cfg, { engine: false, env, interactive: false }));
    expect(err.hint).toContain("--yes");
    const ready = await ensureReady(cfg, { engine: false, env, interactive: false, yes: true });
    expect(ready).toMatchObject({
      kind: "hub",
      repo: REPO,
      isDemo: false,
      artifactsDir: join(tmp, "d", "flashchat", "models", "test-org--tiny-qwen35-moe"),
      expertsDir: join(tmp, "d", "flashchat", "models", "test-org--tiny-qwen35-moe", "packed_experts"),
      maxTokens: 8192,
    });
    expect(ready.checkpointDir).toStartWith(cfg.paths.hfCacheDir);
    // the `model` option picks another model than MODEL_REPO, as --model does
    const other = await ensureReady(await config("demo"), { engine: false, env, interactive: false, model: REPO, yes: true });
    expect(other.repo).toBe(REPO);
  });
});

describe("a local checkpoint folder", () => {
  test("is extracted and repacked in place of a download", async () => {
    const cfg0 = await config(REPO);
    const local = join(tmp, "my-model");
    cpSync(FIXTURE, local, { recursive: true, filter: (p) => !p.includes("hf-bf16") && !p.includes("expected") });
    const cfg = await loadFlashchatConfig({ env, cwd: tmp, overrides: { MODEL_REPO: local } });
    const r = await runSetup(cfg, opts());
    expect(r.ran).toEqual(["extract", "repack"]);
    expect(r.ready.kind).toBe("local");
    expect(r.ready.checkpointDir).toBe(local);
    expect(hub.requests).toEqual([]);
    expect(cfg0.modelRepo).toBe(REPO);
  });

  test("an incomplete folder says what is missing", async () => {
    await config(REPO);
    const local = join(tmp, "broken");
    mkdirSync(local);
    copyFileSync(join(FIXTURE, "config.json"), join(local, "config.json"));
    copyFileSync(join(FIXTURE, "model.safetensors.index.json"), join(local, "model.safetensors.index.json"));
    const cfg = await loadFlashchatConfig({ env, cwd: tmp, overrides: { MODEL_REPO: local } });
    const err = await userErrorOf(runSetup(cfg, opts()));
    expect(err.message).toBe(`checkpoint ${local} is not usable: model-00001-of-00002.safetensors is missing; model-00002-of-00002.safetensors is missing`);
  });
});
