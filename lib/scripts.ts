// The one place that knows where the command scripts are, and runs them as child processes.
import { join } from "pathe";

/** The checkout's scripts/ folder. */
export const SCRIPTS_DIR = join(import.meta.dir, "..", "scripts");

/** scripts/<name>.ts */
export const scriptPath = (name: "flashchat" | "serve" | "extract-weights" | "repack-experts" | "make-test-model") => join(SCRIPTS_DIR, `${name}.ts`);

/** argv running scripts/<name>.ts with this bun (or `bun`). */
export const scriptArgv = (name: Parameters<typeof scriptPath>[0], args: string[] = [], bun = process.execPath) => [bun, scriptPath(name), ...args];

/** `flashchat <args>` as a child sharing the terminal; resolves with its exit code. */
export async function runFlashchat(args: string[], opts: { stdout?: "inherit" | "ignore" } = {}): Promise<number> {
  const proc = Bun.spawn(scriptArgv("flashchat", args), {
    stdin: "inherit",
    // the child's messages are status, never chat output: keep them on stderr
    stdout: opts.stdout ?? "inherit",
    stderr: "inherit",
  });
  return proc.exited;
}
