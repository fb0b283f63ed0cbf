// Test helpers: a throwaway HOME (XDG_* inside it) and running the real CLI / scripts as a user would.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";

export const repoRoot = join(import.meta.dir, "..", "..");

export interface TempHome {
  dir: string;
  home: string;
  env: Record<string, string>;
  [Symbol.dispose](): void;
}

/** A temp dir with home/ and XDG dirs; env has HOME, XDG_*, HF_HOME pointed inside, no FLASHCHAT_* vars. */
export function makeTempHome(prefix = "flashchat-test-"): TempHome {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const home = join(dir, "home");
  mkdirSync(home, { recursive: true });
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("FLASHCHAT_") && !k.startsWith("XDG_") && !k.startsWith("HF_")) env[k] = v;
  }
  Object.assign(env, {
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local", "share"),
    XDG_CACHE_HOME: join(home, ".cache"),
    HF_HOME: join(home, ".cache", "huggingface"),
    NO_COLOR: "1",
  });
  delete env.CI;
  return { dir, home, env, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

/** HOME and XDG_* inside `dir` (config c/, data d/, cache x/), over `base` (default: this process's env). */
export function xdgEnv(dir: string, base: Record<string, string | undefined> = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  return { ...env, HOME: dir, XDG_CONFIG_HOME: join(dir, "c"), XDG_DATA_HOME: join(dir, "d"), XDG_CACHE_HOME: join(dir, "x") };
}

/** A loopback port nothing listens on (one was bound, then freed). */
export function unusedPort(): string {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  const port = String(s.port);
  s.stop(true);
  return port;
}

/** scripts/<name>.ts in this checkout. */
export const scriptFile = (name: string) => join(repoRoot, "scripts", `${name}.ts`);

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `bun scripts/flashchat.ts ...args` (or another script) with the given env and cwd. */
export async function runCli(
  args: string[],
  opts: { env: Record<string, string>; cwd?: string; stdin?: string; script?: string },
): Promise<RunResult> {
  const script = opts.script ?? join(repoRoot, "scripts", "flashchat.ts");
  const proc = Bun.spawn([process.execPath, script, ...args], {
    env: opts.env,
    cwd: opts.cwd ?? repoRoot,
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}
