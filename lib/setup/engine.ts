// The native engine build as a setup step: is the binary newer than every source, and `make engine` when not.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "pathe";
import { engineBinaryPath } from "../engine/client.ts";
import { UserError } from "../errors.ts";
import { logger } from "../log.ts";

/** Root of this checkout (where the Makefile is). */
export const REPO_ROOT = resolve(import.meta.dir, "../..");

export { engineBinaryPath };

export interface EngineState {
  binary: string;
  /** native/Makefile exists: the engine can be built from this checkout. */
  buildable: boolean;
  built: boolean;
  /** built and newer than every source file. */
  current: boolean;
  /** the newest source file, when the binary is older than it */
  staleBecause?: string;
}

const SOURCE_EXT = /\.(c|h|m|metal|mk)$|^Makefile$/;

function newestSource(dir: string): { path: string; mtimeMs: number } {
  let best = { path: "", mtimeMs: 0 };
  if (!existsSync(dir)) return best;
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    if (d.isDirectory()) {
      if (d.name === "build" || d.name.startsWith(".")) continue;
      const sub = newestSource(p);
      if (sub.mtimeMs > best.mtimeMs) best = sub;
    } else if (SOURCE_EXT.test(d.name)) {
      const m = statSync(p).mtimeMs;
      if (m > best.mtimeMs) best = { path: p, mtimeMs: m };
    }
  }
  return best;
}

/**
 * Quick check: is the binary there and up to date? Asks make itself (`make -q`, which knows the real dependencies,
 * a few ms); without make, compares the binary's time with the engine sources'.
 */
export function inspectEngine(root = REPO_ROOT): EngineState {
  const binary = engineBinaryPath(root);
  const native = join(root, "native");
  const buildable = existsSync(join(native, "Makefile"));
  const built = existsSync(binary);
  if (!built) return { binary, buildable, built, current: false };
  if (buildable && Bun.which("make")) {
    const q = Bun.spawnSync(["make", "-q", "-C", native, relative(native, binary)], { stdout: "ignore", stderr: "ignore" });
    if (q.exitCode === 0) return { binary, buildable, built, current: true };
    if (q.exitCode === 1) return { binary, buildable, built, current: false, staleBecause: "its sources" };
  }
  const newest = newestSource(join(native, "src"));
  const current = statSync(binary).mtimeMs >= Math.max(newest.mtimeMs, existsSync(join(native, "Makefile")) ? statSync(join(native, "Makefile")).mtimeMs : 0);
  return { binary, buildable, built, current, staleBecause: current ? undefined : newest.path };
}

/** `make engine` in the checkout; on failure the compiler's last lines are in the error. */
export async function buildEngine(root = REPO_ROOT): Promise<string> {
  const state = inspectEngine(root);
  if (!state.buildable) {
    if (state.built) {
      logger.warn(`the engine sources are not in this checkout; using the existing ${state.binary}`);
      return state.binary;
    }
    throw new UserError("the native engine is not part of this checkout (native/Makefile is missing)", "update your copy of flashchat");
  }
  const t0 = performance.now();
  const { $ } = await import("zx"); // only when building: `status` reads this file too
  const r = await $({ cwd: root, quiet: true, nothrow: true })`make engine`;
  if (r.exitCode !== 0) {
    const tail = `${r.stderr}\n${r.stdout}`.trim().split("\n").slice(-15).join("\n");
    throw new UserError(`building the engine failed (make engine exited with ${r.exitCode}):\n${tail}`, "fix the error above, or run `make engine` yourself to see everything");
  }
  if (!existsSync(state.binary)) throw new UserError(`make engine succeeded but ${state.binary} is missing`, "run `make engine` to see what it did");
  logger.debug(`engine built in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  return state.binary;
}
