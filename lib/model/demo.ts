// The built-in demo model: a tiny checkpoint of the real architecture with random weights (MLX 4-bit layout,
// the real Qwen tokenizer and chat template), generated locally and deterministically. Its replies are random text.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { basename, dirname, join } from "pathe";
import { renameDurable, writeFileAtomic } from "../fs.ts";
import { bundledQwenTokenizerDir, writeTestModel } from "./test-model.ts";

/** Bump when the generated demo changes: an older generated copy is then made again. */
export const DEMO_GENERATOR_VERSION = "1";
export const DEMO_SEED = 20260401;
const STAMP = "flashchat-demo.json";

/** The generator version a demo folder was made with ("" when none). */
export function readDemoStamp(dir: string): string {
  try {
    return String((JSON.parse(readFileSync(join(dir, STAMP), "utf8")) as { version?: string }).version ?? "");
  } catch {
    return "";
  }
}

/**
 * Generate the demo checkpoint into `dir` (replacing an older one): written into a temporary sibling folder,
 * stamped, then renamed into place, so an interrupted run never leaves a folder that looks finished.
 */
export async function generateDemoCheckpoint(dir: string): Promise<string> {
  const parent = dirname(dir);
  const prefix = `.${basename(dir)}.tmp-`;
  // folders left by interrupted runs (any pid) go first
  if (existsSync(parent)) for (const n of readdirSync(parent)) if (n.startsWith(prefix)) rmSync(join(parent, n), { recursive: true, force: true });
  const tmp = join(parent, `${prefix}${process.pid}`);
  await writeTestModel({ dims: "demo", outDir: tmp, seed: DEMO_SEED, tokenizerDir: bundledQwenTokenizerDir(), onProgress: () => {} });
  writeFileAtomic(join(tmp, STAMP), `${JSON.stringify({ version: DEMO_GENERATOR_VERSION, seed: DEMO_SEED, note: "random weights: replies are random text" }, null, 2)}\n`);
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dirname(dir), { recursive: true });
  renameDurable(tmp, dir);
  return dir;
}
