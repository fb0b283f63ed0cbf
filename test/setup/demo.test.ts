// The demo model end to end from an empty HOME: generated (no network, no question), extracted, repacked, the engine
// built if needed and loading it; a second run does no work.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "pathe";
import { inspectArtifacts } from "../../lib/model/artifacts.ts";
import { xdgEnv } from "../helpers/cli.ts";

const ROOT = resolve(import.meta.dir, "../..");
let tmp: string;
let env: Record<string, string>;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "flashchat-demo-"));
  // an empty HOME, no network at all (HF_ENDPOINT points nowhere), no terminal, no --yes
  env = { ...xdgEnv(tmp, { PATH: process.env.PATH ?? "" }), HF_ENDPOINT: "http://127.0.0.1:9", NO_COLOR: "1" };
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function setup() {
  await using proc = Bun.spawn([process.execPath, join(ROOT, "scripts/setup.ts"), "--model", "demo"], { env, cwd: tmp, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  proc.stdin.end();
  const [stdout, stderr, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
  return { stdout, stderr, code };
}

const models = () => join(tmp, "d", "flashchat", "models", "demo");

test("setup --model demo from an empty HOME generates, extracts and repacks without asking", async () => {
  const r = await setup();
  if (r.code !== 0) console.error(r.stderr);
  expect(r.code).toBe(0);
  expect(r.stderr).toContain("replies are random text");
  expect(r.stderr).toContain("demo model: done");
  expect(r.stderr).toContain("extract weights: done");
  expect(r.stderr).toContain("repack experts: done");
  expect(r.stderr).not.toContain("Proceed");
  const ckpt = join(tmp, "d", "flashchat", "checkpoints", "demo");
  for (const f of ["config.json", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"]) expect(existsSync(join(ckpt, f))).toBe(true);
  const art = inspectArtifacts(models());
  expect(art.weightsComplete).toBe(true);
  expect(art.experts.complete).toBe(true);
  expect(existsSync(join(tmp, "x", "huggingface"))).toBe(false); // nothing went near the Hugging Face cache
}, 120_000);

test("a second run does no work", async () => {
  const before = statSync(join(models(), "model_weights.bin")).mtimeMs;
  const r = await setup();
  expect(r.code).toBe(0);
  expect(r.stderr).toContain("is ready");
  // (the engine may be rebuilt when its sources changed meanwhile: that is not model work)
  for (const step of ["demo model", "extract weights", "repack experts"]) expect(r.stderr).not.toContain(`${step}: done in`);
  expect(statSync(join(models(), "model_weights.bin")).mtimeMs).toBe(before);
}, 60_000);

test("the engine loads the demo and computes finite logits", async () => {
  const engine = join(ROOT, "native", "build", "flashchat-engine");
  const out = join(tmp, "logits.f32");
  await using proc = Bun.spawn([engine, "logits", "--artifacts", models(), "--tokens", "9707,11,1879", "--out", out, "--threads", "1"], { stdout: "pipe", stderr: "pipe" });
  const [stderr, code] = await Promise.all([proc.stderr.text(), proc.exited]);
  if (code !== 0) console.error(stderr);
  expect(code).toBe(0);
  const vocab = JSON.parse(readFileSync(join(models(), "model_weights.json"), "utf8")).config.vocab_size;
  const logits = new Float32Array(readFileSync(out).buffer.slice(0));
  expect(logits.length).toBe(3 * vocab);
  expect(logits.every(Number.isFinite)).toBe(true);
  expect(new Set(logits.subarray(0, 1000)).size).toBeGreaterThan(100); // random weights, but not degenerate
}, 60_000);
