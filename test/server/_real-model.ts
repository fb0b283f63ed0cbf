// The fixture model prepared for the real engine in a temp dir: checkpoint copy + the tiny 512-id tokenizer
// (test/server/_tiny-tokenizer.ts) + model_weights.* and packed_experts/ made by the real extract/repack code.
import { copyFileSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "pathe";
import { extractWeights } from "../../lib/model/extract.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { writeTinyTokenizer } from "./_tiny-tokenizer.ts";

export const FIXTURE = join(import.meta.dir, "..", "fixtures", "tiny-qwen35-moe");
export const ENGINE_BINARY = join(import.meta.dir, "..", "..", "native", "build", "flashchat-engine");

/** Build the engine if needed (make is incremental: a no-op when it is current). */
export async function ensureEngineBuilt(): Promise<void> {
  const proc = Bun.spawn(["make", "-s", "-C", join(import.meta.dir, "..", "..", "native"), "all"], { stdout: "pipe", stderr: "pipe" });
  const [err, code] = await Promise.all([proc.stderr.text(), proc.exited]);
  if (code !== 0 || !existsSync(ENGINE_BINARY)) throw new Error(`building the engine failed:\n${err}`);
}

/** Copy the checkpoint (MLX shards + config) into `modelDir` and add the tokenizer. */
export function writeFixtureCheckpoint(modelDir: string): void {
  mkdirSync(modelDir, { recursive: true });
  for (const f of readdirSync(FIXTURE)) if (f.endsWith(".json") || f.endsWith(".safetensors")) copyFileSync(join(FIXTURE, f), join(modelDir, f));
  writeTinyTokenizer(modelDir);
}

export async function prepareFixtureArtifacts(modelDir: string, artifactsDir: string): Promise<void> {
  await ensureEngineBuilt();
  await extractWeights({ checkpointDir: modelDir, outDir: artifactsDir });
  await repackExperts({ checkpointDir: modelDir, outDir: artifactsDir });
}
