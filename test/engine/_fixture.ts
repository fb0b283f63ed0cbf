// The fixture model's artifacts for engine tests, made once per test file in a temp dir by the real extract/repack code.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { engineBinaryPath } from "../../lib/engine/client.ts";
import { extractWeights } from "../../lib/model/extract.ts";
import { repackExperts } from "../../lib/model/repack.ts";

export const FIXTURE = join(import.meta.dir, "..", "fixtures", "tiny-qwen35-moe");
export const NATIVE_DIR = join(import.meta.dir, "..", "..", "native");
export const ENGINE = engineBinaryPath();

export const prompt = (): number[] => JSON.parse(readFileSync(join(FIXTURE, "expected/prompt.json"), "utf8")).input_ids;
export const greedy = (): { generated_ids: number[]; full_sequence: number[] } =>
  JSON.parse(readFileSync(join(FIXTURE, "expected/greedy.json"), "utf8"));
export const readF32 = (path: string): Float32Array => {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
export const expectedLogits = () => readF32(join(FIXTURE, "expected/logits.f32"));
export const expectedFullSequenceLogits = () => readF32(join(FIXTURE, "expected/logits_full_sequence.f32"));
export const VOCAB = 512;
/**
 * Max |logit difference| allowed where positions are evaluated in a batch (prefill): on CPUs with the integer
 * path (AVX-512 VNNI) activations are quantized to int8 in two levels (RUN.md, "Kernel levels"), which moves the
 * fixture's logits by up to ~0.004; the float kernels stay within 1e-3. Argmax must not move either way.
 */
export const PREFILL_LOGIT_TOL = 1e-2;

/** Largest |a - b| per row of [rows, VOCAB]. */
export function rowMaxDiff(a: Float32Array, b: Float32Array, rows: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let i = 0; i < VOCAB; i++) m = Math.max(m, Math.abs(a[r * VOCAB + i]! - b[r * VOCAB + i]!));
    out.push(m);
  }
  return out;
}

export function argmaxRow(a: Float32Array, r: number): number {
  let best = 0;
  for (let i = 1; i < VOCAB; i++) if (a[r * VOCAB + i]! > a[r * VOCAB + best]!) best = i;
  return best;
}

export function makeTempDir(prefix = "flashchat-engine-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export const removeDir = (dir: string) => rmSync(dir, { recursive: true, force: true });

/** Artifacts (model_weights.* + packed_experts/) of the MLX fixture in a new temp dir. */
/** Artifacts of the fixture from its MLX 4-bit folder, or from its hf-bf16 folder (quantized by our tools). */
export async function makeFixtureArtifacts(source: "mlx" | "hf-bf16" = "mlx"): Promise<string> {
  const dir = makeTempDir();
  const checkpointDir = source === "mlx" ? FIXTURE : join(FIXTURE, "hf-bf16");
  await extractWeights({ checkpointDir, outDir: dir });
  await repackExperts({ checkpointDir, outDir: dir });
  return dir;
}

/** Build the engine (no-op when up to date). */
export async function buildEngine(target: "all" | "asan" | "tsan" = "all"): Promise<void> {
  const proc = Bun.spawn(["make", "-s", "-C", NATIVE_DIR, target], { stdout: "pipe", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`make -C native ${target} failed:\n${err}`);
}

/** How long a native test binary may run before it counts as hung (a hang guard, not a speed limit). */
export const HANG_MS = 100_000;

/** Run a native test binary; `hung` says it was killed after HANG_MS. */
export async function runWithHangGuard(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; hung: boolean }> {
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    proc.kill("SIGKILL");
  }, HANG_MS);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, out: out + err, hung };
}
