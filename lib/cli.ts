// Shared command plumbing: common flags, guard() turning user errors into one line + exit code, runScript().
import type { ArgsDef, CommandDef } from "citty";
import { closest } from "./config/validate.ts";
import { Interrupted, isUserError, UserError } from "./errors.ts";
import { isVerbose, logger, setupLogLevel } from "./log.ts";

/** Flags every command accepts (also accepted before the command name by the flashchat CLI). */
export const globalArgs = {
  config: { type: "string", description: "Read settings from this file (above the project and user files)", valueHint: "FILE" },
  verbose: { type: "boolean", alias: "v", description: "Show each step with its timing, and error causes (stderr)" },
  quiet: { type: "boolean", alias: "q", description: "Print only the result and errors (no banners, progress or stats)" },
} as const satisfies ArgsDef;

export const modelArgs = {
  model: { type: "string", description: "Model: a Hugging Face repo (org/name), a registry id, or a local folder", valueHint: "ID" },
} as const satisfies ArgsDef;

/** --context N: CONTEXT_SIZE for the engine a command starts. */
export const contextArgs = {
  context: { type: "string", description: "Context length in tokens (CONTEXT_SIZE; 0 = the model's maximum)", valueHint: "N" },
} as const satisfies ArgsDef;

/** --seed N: SEED for the replies of chat and prompt (none: a random seed per reply). */
export const seedArgs = {
  seed: { type: "string", description: "Sampling seed (SEED; default: a new random seed for every reply)", valueHint: "N" },
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
  if (e instanceof Interrupted) return e.exitCode; // Ctrl-C: quiet
  if (isBrokenPipe(e)) return BROKEN_PIPE_EXIT;
  if (isUserError(e)) {
    logger.error(e.message);
    if (e.hint) logger.info(e.hint);
    if (isVerbose() && e.cause) logger.debug(e.cause);
    return e.exitCode;
  }
  throw e;
}

/** Exit status when stdout's reader has gone (`| head`): quiet, as a program SIGPIPE ended (128 + 13). */
export const BROKEN_PIPE_EXIT = 141;

const isBrokenPipe = (e: unknown) => typeof e === "object" && e !== null && (e as { code?: unknown }).code === "EPIPE";

/** A write to a stdout whose reader has gone: asynchronous errors of the stream end the command as a thrown one does. */
function exitOnBrokenPipe(): void {
  process.stdout.on("error", (e) => {
    if (isBrokenPipe(e)) process.exit(BROKEN_PIPE_EXIT);
    throw e;
  });
}

const camel = (s: string) => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/**
 * citty accepts any flag and any number of arguments; check the command line against the command's args
 * definition: an unknown flag (kebab-case, camelCase, --no-X for booleans, aliases) or a surplus argument is a
 * usage error (exit 2) with "did you mean".
 */
export function checkArgs(rawArgs: readonly string[], def: ArgsDef, usage: string): void {
  const flags = new Map<string, { type?: string }>();
  let positionals = 0;
  // the flashchat CLI passes its global flags on to every command
  def = { ...globalArgs, ...def };
  for (const [name, a] of Object.entries(def)) {
    if (a.type === "positional") {
      positionals++;
      continue;
    }
    flags.set(name, a);
    flags.set(kebab(name), a);
    const alias = (a as { alias?: string | string[] }).alias;
    for (const al of alias === undefined ? [] : Array.isArray(alias) ? alias : [alias]) flags.set(al, a);
  }
  const known = [...new Set(Object.entries(def).filter(([, a]) => a.type !== "positional").map(([n]) => `--${kebab(n)}`))];
  const unknown = (flag: string) => {
    const near = closest(flag.replace(/^-+/, ""), known.map((k) => k.slice(2)));
    return new UserError(`unknown option ${flag}${near ? ` — did you mean --${near}?` : ""}`, usage, 2);
  };
  let seen = 0;
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") {
      seen += rawArgs.length - i - 1;
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      let a = flags.get(name) ?? flags.get(camel(name));
      if (!a && name.startsWith("no-")) {
        const pos = flags.get(name.slice(3)) ?? flags.get(camel(name.slice(3)));
        if (pos?.type === "boolean") a = pos;
      }
      if (!a) throw unknown(arg.slice(0, eq < 0 ? undefined : eq));
      // its value; a known flag right after it is not (citty takes it, but `chat --resume --model x` reads it as a flag)
      const next = rawArgs[i + 1];
      const nextIsFlag = next?.startsWith("--") && flags.has(next.slice(2).split("=")[0]!);
      if (a.type !== "boolean" && eq < 0 && !nextIsFlag) i++;
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1 && !/^-\d/.test(arg)) {
      const letters = arg.slice(1);
      for (let j = 0; j < letters.length; j++) {
        const a = flags.get(letters[j]!);
        if (!a) throw unknown(`-${letters[j]}`);
        if (a.type !== "boolean") {
          if (j === letters.length - 1) i++;
          break;
        }
      }
      continue;
    }
    seen++;
  }
  if (seen > positionals) {
    const extra = rawArgs.filter((a) => !a.startsWith("-")).slice(positionals);
    throw new UserError(`unexpected argument${extra.length > 1 ? "s" : ""}: ${extra.join(" ") || "(after --)"}`, usage, 2);
  }
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
        exitOnBrokenPipe();
        try {
          // a command with subcommands (benchmark) leaves its targets' arguments to them
          const targetNamed = cmd.subCommands && ctx.rawArgs.some((x) => !x.startsWith("-"));
          if (!targetNamed && cmd.args && typeof cmd.args === "object") {
            const name = (cmd.meta && typeof cmd.meta === "object" && "name" in cmd.meta ? cmd.meta.name : undefined) ?? "the command";
            checkArgs(ctx.rawArgs, cmd.args as ArgsDef, `run \`flashchat ${name} --help\` for its options`);
          }
          return await run(ctx);
        } catch (e) {
          process.exit(reportError(e));
        }
      },
    }),
  };
}

/** The command as its help shows it: flags in kebab-case (`--dry-run`, as typed and as RUN.md writes them). */
export function kebabArgs<T extends ArgsDef>(cmd: CommandDef<T>): CommandDef<ArgsDef> {
  if (!cmd.args || typeof cmd.args !== "object") return cmd as CommandDef<ArgsDef>;
  const args = Object.fromEntries(Object.entries(cmd.args as ArgsDef).map(([k, a]) => [a.type === "positional" ? k : kebab(k), a]));
  return { ...(cmd as CommandDef<ArgsDef>), args };
}

/** citty's usage with kebab-case flags, coloured on a terminal only (NO_COLOR turns it off): runMain's showUsage. */
export async function showUsage<T extends ArgsDef>(cmd: CommandDef<T>, parent?: CommandDef<T>): Promise<void> {
  const { renderUsage } = await import("citty");
  const text = await renderUsage(kebabArgs(cmd), parent as CommandDef<ArgsDef> | undefined);
  console.log(process.stdout.isTTY && !process.env.NO_COLOR ? text : Bun.stripANSI(text));
}

/** Entry point for `bun scripts/x.ts`: run the command with user errors guarded; --help as showUsage prints it. */
export async function runScript<T extends ArgsDef>(cmd: CommandDef<T>): Promise<void> {
  const { runMain } = await import("citty");
  await runMain(guard(cmd), { showUsage });
}
