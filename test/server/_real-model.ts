// The fixture model prepared for the real engine in a temp dir: checkpoint copy + the tiny 512-id tokenizer
// (test/server/_tiny-tokenizer.ts) + model_weights.* and packed_experts/ made by the real extract/repack code.
import { copyFileSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "pathe";
import { extractWeights } from "../../lib/model/extract.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { writeTinyTokenizer } from "./_tiny-tokenizer.ts";

export const FIXTURE = join(import.meta.dir, "..", "fixtures", "tiny-qwen35-moe");
export const ENGINE_BINARY = join(import.meta.dir, "..", "..", "native", "build", "flashchat-engine");
export const hasEngine = () => existsSync(ENGINE_BINARY) && existsSync(join(import.meta.dir, "..", "..", "lib", "engine", "client.ts"));

/** Copy the checkpoint (MLX shards + config) into `modelDir` and add the tokenizer. */
export function writeFixtureCheckpoint(modelDir: string): void {
  mkdirSync(modelDir, { recursive: true });
  for (const f of readdirSync(FIXTURE)) if (f.endsWith(".json") || f.endsWith(".safetensors")) copyFileSync(join(FIXTURE, f), join(modelDir, f));
  writeTinyTokenizer(modelDir);
}

export async function prepareFixtureArtifacts(modelDir: string, artifactsDir: string): Promise<void> {
  await extractWeights({ checkpointDir: modelDir, outDir: artifactsDir });
  await repackExperts({ checkpointDir: modelDir, outDir: artifactsDir });
}
