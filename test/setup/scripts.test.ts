// The setup and models scripts as a user runs them: exit codes, one-line errors, stdout kept for data.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "pathe";
import { createMockHub, type MockHub } from "../helpers/mock-hub.ts";

const ROOT = resolve(import.meta.dir, "../..");
const FIXTURE = join(ROOT, "test/fixtures/tiny-qwen35-moe");
let hub: MockHub;
let tmp: string;
let env: Record<string, string>;

beforeAll(() => {
  hub = createMockHub({ repos: { "test-org/tiny": FIXTURE } });
  tmp = mkdtempSync(join(tmpdir(), "flashchat-setup-cli-"));
  env = {
    PATH: process.env.PATH ?? "",
    HOME: tmp,
    XDG_CONFIG_HOME: join(tmp, "config"),
    XDG_DATA_HOME: join(tmp, "data"),
    XDG_CACHE_HOME: join(tmp, "cache"),
    HF_ENDPOINT: hub.url,
    NO_COLOR: "1",
  };
});
afterAll(() => {
  hub.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function run(script: string, args: string[], extraEnv: Record<string, string> = {}) {
  await using proc = Bun.spawn([process.execPath, join(ROOT, "scripts", script), ...args], {
    env: { ...env, ...extraEnv },
    cwd: tmp,
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  proc.stdin.end();
  const [stdout, stderr, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
  return { stdout, stderr, code };
}

test("setup without a terminal and without --yes stops, names --yes, writes nothing", async () => {
  const r = await run("setup.ts", ["--model", "test-org/tiny"]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("needs your consent to download 817 KB");
  expect(r.stderr).toContain("re-run with --yes");
  expect(r.stderr).not.toContain("    at "); // no stack trace for a user mistake
  expect(r.stdout).toBe("");
  expect(readdirSync(join(tmp, "cache"), { recursive: true }).filter((p) => String(p).includes("blobs/"))).toEqual([]);
});

test("setup --dry-run lists the steps and does nothing", async () => {
  const r = await run("setup.ts", ["--model", "test-org/tiny", "--dry-run"]);
  expect(r.code).toBe(0);
  expect(r.stderr).toContain("Setting up test-org/tiny");
  expect(r.stderr).toMatch(/• download +4 of 4 files of test-org\/tiny/);
  expect(r.stderr).toMatch(/• repack experts/);
});

test("an unknown model is one line and exit 1", async () => {
  const r = await run("setup.ts", ["--model", "nope"]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('unknown model "nope"');
  expect(r.stderr).not.toContain("    at ");
});

test("models --json lists the registry with sizes and what is here", async () => {
  const r = await run("models.ts", ["--json"]);
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout);
  expect(out.models.map((m: { id: string }) => m.id)).toEqual(["qwen3.5-397b", "qwen3.6-35b", "qwen3-next-80b", "demo"]);
  expect(out.models[0]).toMatchObject({ current: true, downloaded: false, prepared: false, activeExperts: 4 });
  expect(out.models[0].sizes.expertBytes).toBe(7_077_888);
});

test("flashchat setup --model <a repo on the local Hub> --yes downloads, extracts, repacks and reports ready; again: no work", async () => {
  const first = await run("flashchat.ts", ["setup", "--model", "test-org/tiny", "--yes"]);
  if (first.code !== 0) console.error(first.stderr);
  expect(first.code).toBe(0);
  for (const step of ["download", "extract weights", "repack experts"]) expect(first.stderr).toContain(`${step}: done in`);
  expect(first.stderr).toContain("test-org/tiny is ready");
  hub.requests.length = 0;
  const again = await run("flashchat.ts", ["setup", "--model", "test-org/tiny"]);
  expect(again.code).toBe(0);
  expect(again.stderr).toContain("test-org/tiny is ready");
  for (const step of ["download", "extract weights", "repack experts"]) expect(again.stderr).not.toContain(`${step}: done in`);
  expect(hub.requests).toEqual([]);
  const models = await run("flashchat.ts", ["models"]);
  expect(models.stdout).toContain("Also in the Hugging Face cache: test-org/tiny");
  expect(models.stdout).toContain(`Also prepared: ${join(tmp, "data", "flashchat", "models", "test-org--tiny")}`);
}, 60_000);

test("models prints a table on stdout", async () => {
  const r = await run("models.ts", [], { FLASHCHAT_MODEL_REPO: "demo" });
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/\* demo +demo \(tiny, random weights\)/);
  expect(r.stdout).toContain("replies are random text");
});
