// Shared helpers for the model tests: temp dirs, the fixture path, copying the fixture, reading tensors.
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";

export const FIXTURE = join(import.meta.dir, "../fixtures/tiny-qwen35-moe");
export const FIXTURE_HF = join(FIXTURE, "hf-bf16");

/** A fresh temp dir, removed by the returned cleanup (use with afterEach / try-finally). */
export function makeTempDir(prefix = "flashchat-model-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export const removeDir = (dir: string) => rmSync(dir, { recursive: true, force: true });

/** A writable copy of the MLX fixture (config, index, shards; not the hf-bf16/expected folders). */
export function copyFixture(dest: string, which: "mlx" | "hf" = "mlx"): string {
  const src = which === "mlx" ? FIXTURE : FIXTURE_HF;
  cpSync(src, dest, { recursive: true, filter: (p) => !/\/(hf-bf16|expected)(\/|$)/.test(p.slice(src.length)) });
  return dest;
}
