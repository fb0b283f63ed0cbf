// Test helpers: a temp model folder with the tiny 512-id tokenizer and Qwen3's chat template, and a server on port 0.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { type RunningServer, type ServerOptions, startServer } from "../../lib/server/app.ts";
import { writeTinyTokenizer } from "./_tiny-tokenizer.ts";

export function createTempDir(prefix: string): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

export function createTinyModelDir(root: string): string {
  const dir = join(root, "model");
  writeTinyTokenizer(dir);
  return dir;
}

export async function startTestServer(root: string, opts: Partial<ServerOptions> = {}): Promise<RunningServer> {
  const s = await startServer({
    host: "127.0.0.1",
    port: 0,
    modelId: "tiny",
    tokenizerDir: opts.tokenizerDir ?? createTinyModelDir(root),
    engine: { artifactsDir: join(root, "artifacts") },
    defaults: { maxTokens: 64, temperature: 0.7, topP: 0.9, allowForceTokens: true },
    logFile: join(root, "logs", "server.log"),
    ...opts,
  });
  await s.engineStarted;
  return s;
}
