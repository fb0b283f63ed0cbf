#!/usr/bin/env bun
// The flashchat CLI: one entry point dispatching to the scripts/ commands (lazily imported).
//   ./flashchat status            ./flashchat -v config get SERVER_PORT
//   ./flashchat chat --resume ID  ./flashchat   (the full-screen TUI on a terminal; --no-tui: the numbered menu)
// Start-up time matters here: only small local modules at the top; citty, the commands and everything they use
// are imported when the command line needs them (`--version` loads nothing else).
import type { ArgsDef, CommandDef } from "citty";
import { join } from "pathe";
import pkg from "../package.json" with { type: "json" };
import { globalArgs, guard, kebabArgs, reportError, showUsage } from "../lib/cli.ts";
import { COMMANDS, findCommand } from "../lib/commands.ts";
import { closest } from "../lib/config/validate.ts";
import { UserError } from "../lib/errors.ts";
import { logStep, setupLogLevel } from "../lib/log.ts";
import { isInteractive } from "../lib/term.ts";

const main = defineMain();

function defineMain(): CommandDef<ArgsDef> {
  return {
    meta: { name: "flashchat", version: pkg.version, description: "Run giant Mixture-of-Experts models on one machine" },
    args: { ...globalArgs, command: { type: "positional", required: false, description: "Command to run (none: the full-screen TUI on a terminal; `flashchat --no-tui`: the numbered menu)" } },
    // Descriptions only: usage lists the commands without importing them; run() loads the chosen one.
    subCommands: {
      ...Object.fromEntries(COMMANDS.map((c) => [c.name, { meta: { name: c.name, description: c.description } }])),
      help: { meta: { name: "help", description: "Help on a command: flashchat help COMMAND (the same as COMMAND --help)" } },
    },
  };
}

/** Import a command's script. */
export async function loadCommand(name: string): Promise<CommandDef<ArgsDef>> {
  const entry = findCommand(name)!;
  const started = performance.now();
  const mod = (await import(`${import.meta.dir}/${entry.file}`)) as { default: CommandDef<ArgsDef> };
  logStep(`loaded the ${name} command`, started);
  return guard(mod.default);
}

const GLOBAL_BOOL = new Set(["-v", "--verbose", "-q", "--quiet"]);

/** Pull global options out of any position so `flashchat -v status` and `flashchat status -v` both work. */
export function splitGlobals(argv: string[]): { globals: string[]; rest: string[] } {
  const globals: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    if (GLOBAL_BOOL.has(a) || a.startsWith("--config=")) globals.push(a);
    else if (a === "--config") {
      if (i + 1 >= argv.length) throw new UserError("--config needs a file", "usage: flashchat --config FILE <command>", 2);
      globals.push(a, argv[++i]!);
    } else rest.push(a);
  }
  return { globals, rest };
}

async function run(argv: string[]): Promise<void> {
  const { globals, rest: all } = splitGlobals(argv);
  // --no-tui: a bare `flashchat` shows the numbered menu instead of the full-screen TUI
  const noTui = all.length > 0 && all.every((a) => a === "--no-tui");
  const rest = noTui ? [] : all;
  setupLogLevel({ verbose: globals.some((g) => g === "-v" || g === "--verbose"), quiet: globals.some((g) => g === "-q" || g === "--quiet") });
  const first = rest[0];

  if (first === "--version" || first === "-V") {
    console.log(pkg.version);
    return;
  }
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    const topic = first === "help" ? rest[1] : undefined;
    if (topic) return showCommandHelp(topic);
    if (first === undefined && isInteractive()) {
      const at = globals.findIndex((g) => g === "--config" || g.startsWith("--config="));
      const configFile = at < 0 ? undefined : globals[at] === "--config" ? globals[at + 1] : globals[at]!.slice("--config=".length);
      if (noTui) {
        const { runMenu } = await import("../lib/chat/menu.ts");
        return runMenu({ configFile });
      }
      // the full-screen TUI; imported here so that no other command pays for it
      const { runTui } = await import("../lib/tui/index.ts");
      process.exitCode = await runTui({ configFile });
      return;
    }
    const { renderUsage } = await import("citty");
    console.log(plain(await renderUsage(main)));
    return;
  }
  if (first.startsWith("-")) throw new UserError(`unknown option ${first}`, "run `flashchat --help` for the options", 2);
  if (!findCommand(first)) {
    const near = closest(first, COMMANDS.map((c) => c.name));
    throw new UserError(`unknown command "${first}"${near ? ` — did you mean "${near}"?` : ""}`, "run `flashchat --help` for the list of commands", 2);
  }
  const sub = await loadCommand(first);
  const subArgs = [...rest.slice(1), ...globals];
  // a command with targets (benchmark) lets citty show the chosen target's help
  if ((subArgs.includes("--help") || subArgs.includes("-h")) && !sub.subCommands) return showCommandHelp(first);
  const { runMain } = await import("citty");
  await runMain(sub, { rawArgs: subArgs, showUsage });
}

async function showCommandHelp(name: string): Promise<void> {
  if (!findCommand(name)) throw new UserError(`unknown command "${name}"`, "run `flashchat --help` for the list of commands", 2);
  const { renderUsage } = await import("citty");
  console.log(plain(await renderUsage(kebabArgs(await loadCommand(name)), main)));
}

/** citty colours its usage text; keep colour for terminals only. */
const plain = (text: string) => (process.stdout.isTTY && !process.env.NO_COLOR ? text : Bun.stripANSI(text));

if (import.meta.main) {
  try {
    await run(process.argv.slice(2));
  } catch (e) {
    process.exit(reportError(e));
  }
}

export default main;
