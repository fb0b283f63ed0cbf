#!/usr/bin/env bun
// The flashchat CLI: one entry point dispatching to the scripts/ commands (lazily imported).
//   ./flashchat status            ./flashchat -v config get SERVER_PORT
//   ./flashchat chat --resume ID  ./flashchat   (the full-screen TUI on a terminal; --no-tui: the numbered menu)
// Start-up time matters here: a bare `flashchat` on a terminal (the TUI) loads only the small modules at the
// top (which the TUI uses too) before the TUI's own; the command plumbing (lib/cli.ts, the command list, package.json) is imported by
// the other paths, and citty, the commands and everything they use when the command line needs them.
import type { ArgsDef, CommandDef } from "citty";
import { UserError } from "../lib/errors.ts";
import { logStep, setupLogLevel } from "../lib/log.ts";
import { isInteractive } from "../lib/term.ts";

/** What every path but the TUI's uses: loaded once, when first needed. */
let loaded: ReturnType<typeof importPlumbing> | undefined;
const importPlumbing = () =>
  Promise.all([import("../package.json", { with: { type: "json" } }), import("../lib/cli.ts"), import("../lib/commands.ts")]).then(([pkg, cli, commands]) => ({ pkg: pkg.default, ...cli, ...commands }));
const plumbing = () => (loaded ??= importPlumbing());

async function defineMain(): Promise<CommandDef<ArgsDef>> {
  const { pkg, globalArgs, COMMANDS } = await plumbing();
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
  const { findCommand, guard } = await plumbing();
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

  // the full-screen TUI first: nothing else is loaded on its way
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
  const { pkg, findCommand, COMMANDS, showUsage } = await plumbing();
  if (first === "--version" || first === "-V") {
    console.log(pkg.version);
    return;
  }
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    const topic = first === "help" ? rest[1] : undefined;
    if (topic) return showCommandHelp(topic);
    const { renderUsage } = await import("citty");
    console.log(plain(await renderUsage(await defineMain())));
    return;
  }
  if (first.startsWith("-")) throw new UserError(`unknown option ${first}`, "run `flashchat --help` for the options", 2);
  if (!findCommand(first)) {
    const { closest } = await import("../lib/config/validate.ts");
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
  const { findCommand, kebabArgs } = await plumbing();
  if (!findCommand(name)) throw new UserError(`unknown command "${name}"`, "run `flashchat --help` for the list of commands", 2);
  const { renderUsage } = await import("citty");
  console.log(plain(await renderUsage(kebabArgs(await loadCommand(name)), await defineMain())));
}

/** citty colours its usage text; keep colour for terminals only. */
const plain = (text: string) => (process.stdout.isTTY && !process.env.NO_COLOR ? text : Bun.stripANSI(text));

if (import.meta.main) {
  try {
    await run(process.argv.slice(2));
  } catch (e) {
    const { reportError } = await import("../lib/cli.ts");
    process.exit(reportError(e));
  }
}
