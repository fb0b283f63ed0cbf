// Shared command plumbing: common flags, guard() turning user errors into one line + exit code, runScript().
import { type ArgsDef, type CommandDef, runMain } from "citty";
import { isUserError, UserError } from "./errors.ts";
import { isVerbose, logger, setupLogLevel } from "./log.ts";

/** Flags every command accepts (also accepted before the command name by the flashchat CLI). */
export const globalArgs = {
  config: { type: "string", description: "Read settings from this file (above the project and user files)", valueHint: "FILE" },
  verbose: { type: "boolean", alias: "v", description: "Say more (debug output, error causes)" },
  quiet: { type: "boolean", alias: "q", description: "Only warnings and errors" },
} as const satisfies ArgsDef;

export const modelArgs = {
  model: { type: "string", description: "Model: a Hugging Face repo (org/name), a registry id, or a local folder", valueHint: "ID" },
} as const satisfies ArgsDef;

/** --context N: CONTEXT_SIZE for the engine a command starts. */
export const contextArgs = {
  context: { type: "string", description: "Context length in tokens (CONTEXT_SIZE; 0 = the model's maximum)", valueHint: "N" },
} as const satisfies ArgsDef;

export const jsonArgs = {
  json: { type: "boolean", description: "Print machine-readable JSON on stdout" },
} as const satisfies ArgsDef;

export const yesArgs = {
  yes: { type: "boolean", alias: "y", description: "Answer yes to setup questions (downloads, large writes)" },
} as const satisfies ArgsDef;

/**
 * A whole-number flag (citty hands flags over as strings): undefined when not given, else a number of at least
 * `min` (default 1); anything else is a usage error naming the flag (exit 2).
 */
export function parseIntFlag(value: string | undefined, flag: string, min = 1): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!/^\s*[+-]?\d+\s*$/.test(String(value)) || !Number.isSafeInteger(n) || n < min)
    throw new UserError(`invalid ${flag} ${JSON.stringify(String(value))}: expected a whole number, ${min} or more`, undefined, 2);
  return n;
}

/** Report an error the way the user should see it; returns the exit code. Bugs are rethrown. */
export function reportError(e: unknown): number {
  if (isUserError(e)) {
    logger.error(e.message);
    if (e.hint) logger.info(e.hint);
    if (isVerbose() && e.cause) logger.debug(e.cause);
    return e.exitCode;
  }
  throw e;
}

/** Wrap a command so a UserError becomes one line on stderr and its exit code; anything else keeps its stack. */
export function guard<T extends ArgsDef>(cmd: CommandDef<T>): CommandDef<T> {
  const { run, setup } = cmd;
  return {
    ...cmd,
    // setup runs before citty picks a subcommand: where commands with targets check the target's name
    ...(setup && {
      async setup(ctx) {
        try {
          return await setup(ctx);
        } catch (e) {
          process.exit(reportError(e));
        }
      },
    }),
    ...(run && {
      async run(ctx) {
        const a = ctx.args as Record<string, unknown>;
        setupLogLevel({ verbose: Boolean(a.verbose), quiet: Boolean(a.quiet) });
        try {
          return await run(ctx);
        } catch (e) {
          process.exit(reportError(e));
        }
      },
    }),
  };
}

/** Entry point for `bun scripts/x.ts`: run the command with user errors guarded. */
export async function runScript<T extends ArgsDef>(cmd: CommandDef<T>): Promise<void> {
  await runMain(guard(cmd));
}
