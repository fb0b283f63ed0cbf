// The one logger: consola writing to stderr, so stdout stays for data (--json, generated text). consola is loaded
// on the first message (most runs of most commands print none), and -v step lines carry their timing.
import type { ConsolaInstance } from "consola";

/** consola's numeric levels: what -q (errors only), the default (info) and -v (debug) set. */
export const LogLevels = { error: 0, warn: 1, log: 2, info: 3, debug: 4, trace: 5 } as const;

let level: number = LogLevels.info;
let instance: ConsolaInstance | undefined;

function createLogger(): ConsolaInstance {
  // require: synchronous, so `logger.info(...)` keeps working as a plain call wherever it is made
  const { createConsola } = require("consola") as typeof import("consola");
  // boxes and blank lines on a terminal; one plain line per message in pipes, logs and CI
  const fancy = Boolean(process.stderr.isTTY) && !process.env.CI;
  // level set explicitly: consola would otherwise go quiet whenever NODE_ENV=test
  // no clock time on messages: a person reads them now, and logs have their own timestamps
  return createConsola({ stdout: process.stderr, stderr: process.stderr, level, formatOptions: { date: false }, ...({ fancy } as object) });
}

const real = (): ConsolaInstance => (instance ??= createLogger());

/** The logger (a consola instance, created when first used; reading or setting `level` never loads it). */
export const logger: ConsolaInstance = new Proxy({} as ConsolaInstance, {
  get(_, key) {
    if (key === "level") return instance ? instance.level : level;
    const c = real();
    const v = Reflect.get(c, key, c) as unknown;
    return typeof v === "function" ? v.bind(c) : v;
  },
  set(_, key, value) {
    if (key === "level") {
      level = value as number;
      if (instance) instance.level = level;
      return true;
    }
    return Reflect.set(real(), key, value);
  },
});

/** -q (only the answer and errors) / -v (every step with its timing) / DEBUG decide how much the logger says. */
export function setupLogLevel(opts: { verbose?: boolean; quiet?: boolean }): void {
  if (opts.quiet) logger.level = LogLevels.error;
  else if (opts.verbose || process.env.DEBUG) logger.level = LogLevels.debug;
}

export const isVerbose = () => logger.level >= LogLevels.debug;
export const isQuiet = () => logger.level < LogLevels.warn;

/** Milliseconds since this process started (Bun's performance.now() counts from process start). */
export const elapsedMs = () => performance.now();

/**
 * A -v step line on stderr: "+0.412s engine: loaded (289 ms)" — the time since the process started, then what
 * happened, then how long it took when `startedMs` (an elapsedMs() reading) is given. Silent without -v.
 */
export function logStep(what: string, startedMs?: number): void {
  if (!isVerbose()) return;
  const now = elapsedMs();
  logger.debug(`+${(now / 1000).toFixed(3)}s ${what}${startedMs === undefined ? "" : ` (${Math.round(now - startedMs)} ms)`}`);
}

/** Run `fn` and log it as a -v step with its duration; `what` may name the result. */
export async function timeStep<T>(what: string | ((r: T) => string), fn: () => Promise<T> | T): Promise<T> {
  const t0 = elapsedMs();
  const r = await fn();
  logStep(typeof what === "string" ? what : what(r), t0);
  return r;
}

/** Status on stderr that -q silences (banners, "loading the model…"): what `process.stderr.write` was used for. */
export function say(line: string): void {
  if (!isQuiet()) process.stderr.write(`${line}\n`);
}
