import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import { ConfigError } from "../../lib/errors.ts";
import { loadFlashchatConfig, resolveHfCacheDir } from "../../lib/config/index.ts";
import { findHfSnapshot } from "../../lib/model/hf-cache.ts";
import { makeTempHome, type TempHome } from "../helpers/cli.ts";

let t: TempHome;
afterEach(() => t?.[Symbol.dispose]());

function setup() {
  t = makeTempHome();
  const cwd = join(t.dir, "project");
  mkdirSync(cwd);
  const userFile = join(t.env.XDG_CONFIG_HOME!, "flashchat", "config");
  mkdirSync(join(t.env.XDG_CONFIG_HOME!, "flashchat"), { recursive: true });
  return { cwd, userFile };
}

describe("precedence: flags > env > --config FILE > ./flashchat.config > user file > defaults", () => {
  test("each source wins over the ones below it, key by key", async () => {
    const { cwd, userFile } = setup();
    writeFileSync(userFile, "SERVER_PORT=1001\nMAX_TOKENS=11\nTEMPERATURE=0.11\nTOP_P=0.11\nSERVER_HOST=user.example\n");
    writeFileSync(join(cwd, "flashchat.config"), "SERVER_PORT=1002\nMAX_TOKENS=12\nTEMPERATURE=0.12\nTOP_P=0.12\n");
    const explicit = join(t.dir, "explicit.conf");
    writeFileSync(explicit, "SERVER_PORT=1003\nMAX_TOKENS=13\nTEMPERATURE=0.13\n");
    const env = { ...t.env, FLASHCHAT_SERVER_PORT: "1004", FLASHCHAT_MAX_TOKENS: "14" };
    const c = await loadFlashchatConfig({ cwd, env, configFile: explicit, overrides: { SERVER_PORT: "1005" }, flagNames: { SERVER_PORT: "--port" } });
    expect([c.serverPort, c.maxTokens, c.temperature, c.topP, c.serverHost, c.quantization]).toEqual([1005, 14, 0.13, 0.12, "user.example", "4bit"]);
    expect(c.sources.SERVER_PORT).toEqual({ kind: "flag", where: "--port" });
    expect(c.sources.MAX_TOKENS).toEqual({ kind: "env", where: "FLASHCHAT_MAX_TOKENS" });
    expect(c.sources.TEMPERATURE).toEqual({ kind: "file", where: `${explicit}:3` });
    expect(c.sources.TOP_P).toEqual({ kind: "project", where: `${join(cwd, "flashchat.config")}:4` });
    expect(c.sources.SERVER_HOST).toEqual({ kind: "user", where: `${userFile}:5` });
    expect(c.sources.QUANTIZATION).toEqual({ kind: "default", where: "default" });
    expect(c.filesRead).toEqual([explicit, join(cwd, "flashchat.config"), userFile]);
  });

  test("a flag not given (undefined) falls through to the files", async () => {
    const { cwd, userFile } = setup();
    writeFileSync(userFile, "SERVER_PORT=1001\n");
    const c = await loadFlashchatConfig({ cwd, env: t.env, overrides: { SERVER_PORT: undefined, MODEL_REPO: undefined } });
    expect(c.serverPort).toBe(1001);
    expect(c.modelRepo).toBe("mlx-community/Qwen3.5-397B-A17B-4bit");
  });

  test("defaults and derived paths", async () => {
    const { cwd } = setup();
    const c = await loadFlashchatConfig({ cwd, env: t.env });
    expect(c.serverPort).toBe(8000);
    expect(c.serverHost).toBe("127.0.0.1");
    expect(c.maxTokens).toBeNull(); // not set: the model's own default (lib/model)
    expect(c.temperature).toBe(0.7);
    expect(c.topP).toBe(0.9);
    expect(c.activeExperts).toBeNull();
    expect(c.threads).toBeNull();
    expect(c.serverLogPath).toBe(join(t.env.XDG_CONFIG_HOME!, "flashchat", "logs", "server.log"));
    expect(c.artifactsDir).toBe(join(t.env.XDG_DATA_HOME!, "flashchat", "models"));
    expect(c.paths.sessionsDir).toBe(join(t.env.XDG_CONFIG_HOME!, "flashchat", "sessions"));
    expect(c.paths.legacySessionsDir).toBe(join(t.home, ".flashchat", "sessions"));
    expect(c.colorOutput).toBe(false); // NO_COLOR is set by the test env
  });

  test("~ is expanded and relative paths in a file are relative to that file", async () => {
    const { cwd, userFile } = setup();
    writeFileSync(userFile, 'ARTIFACTS_DIR="~/models"\nEXPERTS_DIR=fast/experts\n');
    const c = await loadFlashchatConfig({ cwd, env: t.env });
    expect(c.artifactsDir).toBe(join(t.home, "models"));
    expect(c.expertsDir).toBe(join(t.env.XDG_CONFIG_HOME!, "flashchat", "fast", "experts"));
  });
});

describe("validation names the source, the key, the value and what is allowed", () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ["env", { FLASHCHAT_SERVER_PORT: "abc" }, /invalid SERVER_PORT "abc" \(from environment variable FLASHCHAT_SERVER_PORT\): expected a whole number from 1 to 65535/],
    ["env", { FLASHCHAT_SERVER_PORT: "70000" }, /SERVER_PORT "70000".*1 to 65535/],
    ["env", { FLASHCHAT_TEMPERATURE: "-1" }, /TEMPERATURE "-1".*a number from 0 to 2/],
    ["env", { FLASHCHAT_QUANTIZATION: "3bit" }, /QUANTIZATION "3bit".*one of 4bit, 2bit/],
    ["env", { FLASHCHAT_SHOW_THINKING: "maybe" }, /SHOW_THINKING "maybe".*1 or 0/],
    ["env", { FLASHCHAT_MAX_TOKENS: "1.5" }, /MAX_TOKENS "1.5".*whole number/],
    ["env", { FLASHCHAT_THREADS: "0" }, /THREADS "0".*from 1 to 1024 or "" \(automatic\)/],
  ];
  for (const [, env, re] of cases) {
    test(`${Object.entries(env)[0]!.join("=")}`, async () => {
      const { cwd } = setup();
      const err = await loadFlashchatConfig({ cwd, env: { ...t.env, ...env } }).catch((e) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.exitCode).toBe(2);
      expect(err.message).toMatch(re);
    });
  }

  test("a bad value in a file names the file and line", async () => {
    const { cwd } = setup();
    writeFileSync(join(cwd, "flashchat.config"), "# c\nTOP_P=2\n");
    const err = await loadFlashchatConfig({ cwd, env: t.env }).catch((e) => e);
    expect(err.message).toBe(`invalid TOP_P "2" (from ${join(cwd, "flashchat.config")}:2): expected a number from 0 to 1`);
  });

  test("a bad flag names the flag", async () => {
    const { cwd } = setup();
    const err = await loadFlashchatConfig({ cwd, env: t.env, overrides: { SERVER_PORT: "x" }, flagNames: { SERVER_PORT: "--port" } }).catch((e) => e);
    expect(err.message).toMatch(/from flag --port/);
  });

  test("a missing --config file is an error", async () => {
    const { cwd } = setup();
    const err = await loadFlashchatConfig({ cwd, env: t.env, configFile: "nope.conf" }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain("config file not found");
  });
});

describe("first run", () => {
  test("creates the user config from the commented template, once", async () => {
    const { cwd, userFile } = setup();
    await loadFlashchatConfig({ cwd, env: t.env });
    expect(existsSync(userFile)).toBe(true);
    const text = readFileSync(userFile, "utf8");
    expect(text).toContain('# SERVER_PORT="8000"');
    expect(text.split("\n").filter((l) => /^[A-Z]/.test(l))).toEqual([]); // everything commented out
    writeFileSync(userFile, "SERVER_PORT=1234\n");
    const c = await loadFlashchatConfig({ cwd, env: t.env });
    expect(c.serverPort).toBe(1234);
    expect(readFileSync(userFile, "utf8")).toBe("SERVER_PORT=1234\n");
  });
});

describe("Hugging Face cache detection", () => {
  const repo = "mlx-community/Tiny-4bit";
  function snapshot(cache: string, rev: string, mtime: number) {
    const d = join(cache, "models--mlx-community--Tiny-4bit", "snapshots", rev);
    mkdirSync(d, { recursive: true });
    utimesSync(d, mtime, mtime);
    return d;
  }

  test("cache folder: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub", () => {
    expect(resolveHfCacheDir({ HF_HUB_CACHE: "/a", HF_HOME: "/b" }, "/h")).toBe("/a");
    expect(resolveHfCacheDir({ HF_HOME: "/b" }, "/h")).toBe("/b/hub");
    expect(resolveHfCacheDir({}, "/h")).toBe("/h/.cache/huggingface/hub");
  });

  test("refs/main wins over a newer snapshot", () => {
    setup();
    const cache = join(t.dir, "hub");
    const main = snapshot(cache, "aaa", 1000);
    snapshot(cache, "bbb", 2000);
    mkdirSync(join(cache, "models--mlx-community--Tiny-4bit", "refs"), { recursive: true });
    writeFileSync(join(cache, "models--mlx-community--Tiny-4bit", "refs", "main"), "aaa");
    expect(findHfSnapshot(cache, repo)).toBe(main);
  });

  test("without refs/main the newest snapshot is used", () => {
    setup();
    const cache = join(t.dir, "hub");
    snapshot(cache, "aaa", 1000);
    const newer = snapshot(cache, "ccc", 3000);
    snapshot(cache, "bbb", 2000);
    expect(findHfSnapshot(cache, repo)).toBe(newer);
  });

  test("absent repo gives empty; the config keeps MODEL_PATH as given and finds the cache through HF_HUB_CACHE", async () => {
    const { cwd } = setup();
    const cache = join(t.dir, "hub");
    expect(findHfSnapshot(cache, repo)).toBe("");
    snapshot(cache, "r1", 1000);
    const c = await loadFlashchatConfig({ cwd, env: { ...t.env, HF_HUB_CACHE: cache, FLASHCHAT_MODEL_REPO: repo } });
    expect(c.modelPath).toBe("");
    expect(c.paths.hfCacheDir).toBe(cache);
    const c2 = await loadFlashchatConfig({ cwd, env: { ...t.env, HF_HUB_CACHE: cache, FLASHCHAT_MODEL_PATH: "/explicit" } });
    expect(c2.modelPath).toBe("/explicit");
  });
});
