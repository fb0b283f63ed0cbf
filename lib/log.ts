// The one logger: consola writing to stderr, so stdout stays for data (--json, generated text).
import { createConsola, LogLevels } from "consola";

// boxes and blank lines on a terminal; one plain line per message in pipes, logs and CI
const fancy = Boolean(process.stderr.isTTY) && !process.env.CI;
// level set explicitly: consola would otherwise go quiet whenever NODE_ENV=test
// no clock time on messages: a person reads them now, and logs have their own timestamps
export const logger = createConsola({ stdout: process.stderr, stderr: process.stderr, level: LogLevels.info, formatOptions: { date: false }, ...({ fancy } as object) });

/** -v / -q / DEBUG decide how much the logger says. */
export function setupLogLevel(opts: { verbose?: boolean; quiet?: boolean }): void {
  if (opts.quiet) logger.level = LogLevels.warn;
  else if (opts.verbose || process.env.DEBUG) logger.level = LogLevels.debug;
}

export const isVerbose = () => logger.level >= LogLevels.debug;
