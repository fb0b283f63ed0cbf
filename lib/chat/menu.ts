// The interactive menu of a bare `flashchat` on a terminal: chat, resume, server, configure, status,
// sessions, benchmarks. Arrow keys or numbers; fits an 80x24 terminal; every action comes back here.
import { loadFlashchatConfig } from "../config/index.ts";
import type { ResolvedConfig } from "../config/schema.ts";
import { isUserError } from "../errors.ts";
import { runConnectedChat } from "./connect.ts";
import { type Key, KeyParser } from "./keys.ts";
import { History, LineEditor } from "./line-editor.ts";
import { resolveColor } from "../term.ts";
import { ANSI } from "./render.ts";
import { loadServerStatus, type ServerStatus, useDefaultModel } from "../client/local.ts";
import { runFlashchat } from "../scripts.ts";
import { pickSession, renderSessionChoices, renderSessionTable } from "./session-list.ts";
import { listSessions } from "./sessions.ts";
import { listModelChoices } from "../model/choices.ts";

export type MenuAction = "chat" | "resume" | "server" | "configure" | "status" | "sessions" | "benchmark" | "model" | "quit";

export interface MenuItem {
  action: MenuAction;
  label: string;
}

export function resolveMenuItems(server: ServerStatus): MenuItem[] {
  return [
    { action: "chat", label: "New chat" },
    { action: "resume", label: "Resume a session" },
    { action: "server", label: server.running ? "Stop the server" : "Start the server" },
    { action: "configure", label: "Configure (setup wizard)" },
    { action: "status", label: "Status" },
    { action: "sessions", label: "Sessions" },
    { action: "benchmark", label: "Benchmarks" },
    { action: "model", label: "Choose the model" },
    { action: "quit", label: "Quit" },
  ];
}

/** The menu screen as text (at most 24 rows, 80 columns). */
export function renderMenu(items: readonly MenuItem[], selected: number, info: { server: ServerStatus; model: string; color: boolean; message?: string }): string {
  const c = (code: string, s: string) => (info.color ? `${code}${s}${ANSI.reset}` : s);
  const cut = (s: string) => (s.length > 78 ? `${s.slice(0, 77)}…` : s);
  const lines = [
    c(ANSI.bold, "flashchat"),
    c(ANSI.dim, cut(`model  ${info.model}`)),
    c(ANSI.dim, cut(`server ${info.server.summary}`)),
    "",
    ...items.map((it, i) => {
      const text = `${i + 1}. ${it.label}`;
      if (i !== selected) return `  ${text}`;
      return info.color ? `\x1b[7m> ${text} ${ANSI.reset}` : `> ${text}`;
    }),
    "",
    c(ANSI.dim, "↑/↓ and Enter, or a number · q quits"),
  ];
  if (info.message) lines.push("", cut(info.message));
  return lines.join("\n");
}

export interface RunMenuOptions {
  configFile?: string;
  input?: NodeJS.ReadStream;
  output?: NodeJS.WriteStream;
}

/** Run a flashchat command as a child with the terminal handed over; resolves with its exit code. */
const runCommand = (args: string[], configFile?: string) => runFlashchat([...args, ...(configFile ? ["--config", configFile] : [])]);

/** Wait for one key press (menu choice); resolves with the keys of that press. */
function readKeys(input: NodeJS.ReadStream, parser: KeyParser): Promise<Key[]> {
  return new Promise((resolvePromise) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (keys: Key[]) => {
      input.off("data", onData);
      if (timer) clearTimeout(timer);
      input.setRawMode?.(false);
      input.pause();
      resolvePromise(keys);
    };
    const onData = (d: Buffer) => {
      if (timer) clearTimeout(timer);
      const keys = parser.feed(d.toString());
      if (keys.length) return finish(keys);
      timer = setTimeout(() => {
        const k = parser.flushEscape();
        if (k.length) finish(k);
      }, 50);
    };
    input.setRawMode?.(true);
    input.on("data", onData);
    input.resume();
  });
}

/** The menu loop. Returns when the user quits. */
export async function runMenu(opts: RunMenuOptions = {}): Promise<void> {
  const input = opts.input ?? process.stdin;
  const output = opts.output ?? process.stdout;
  const parser = new KeyParser();
  let selected = 0;
  let message: string | undefined;
  // no MODEL_REPO configured: the model set up here, as chat would use (lib/model/choices.ts)
  const load = async () => useDefaultModel(await loadFlashchatConfig({ configFile: opts.configFile }), null);
  const pause = async () => {
    output.write("\nPress Enter to return to the menu…");
    for (;;) {
      const keys = await readKeys(input, parser);
      if (keys.some((k) => k.name === "enter" || k.name === "interrupt" || k.name === "eof" || k.name === "escape" || (k.name === "char" && k.text === "q"))) break;
    }
  };
  for (;;) {
    const config = await load();
    const color = resolveColor(config.colorOutput, output.isTTY);
    const server = await loadServerStatus(config);
    const items = resolveMenuItems(server);
    output.write(`\x1b[H\x1b[2J${renderMenu(items, selected, { server, model: config.modelRepo, color, message })}`);
    const keys = await readKeys(input, parser);
    let chosen: MenuAction | undefined;
    for (const k of keys) {
      if (k.name === "up") selected = (selected + items.length - 1) % items.length;
      else if (k.name === "down" || k.name === "tab") selected = (selected + 1) % items.length;
      else if (k.name === "home") selected = 0;
      else if (k.name === "end") selected = items.length - 1;
      else if (k.name === "enter") chosen = items[selected]!.action;
      else if (k.name === "interrupt" || k.name === "eof" || k.name === "escape") chosen = "quit";
      else if (k.name === "char") {
        const ch = k.text[0]!;
        if (ch === "q") chosen = "quit";
        else if (/[1-9]/.test(ch) && Number(ch) <= items.length) {
          selected = Number(ch) - 1;
          chosen = items[selected]!.action;
        } else if (ch === "k") selected = (selected + items.length - 1) % items.length;
        else if (ch === "j") selected = (selected + 1) % items.length;
      }
    }
    if (!chosen) continue;
    message = undefined;
    if (chosen === "quit") {
      output.write("\x1b[H\x1b[2J");
      return;
    }
    output.write("\x1b[H\x1b[2J");
    try {
      message = await runAction(chosen, config, server, { input, output, pause, configFile: opts.configFile });
    } catch (e) {
      if (!isUserError(e)) throw e;
      output.write(`\n${e.message}\n${e.hint ? `${e.hint}\n` : ""}`);
      await pause();
    }
  }
}

/** Before starting a server from the menu: set the model up if needed (asks once on the terminal). */
const prepareModel = async (config: ResolvedConfig) => (await import("../setup/index.ts")).ensureReady(config, {});

async function runAction(
  action: MenuAction,
  config: ResolvedConfig,
  server: ServerStatus,
  io: { input: NodeJS.ReadStream; output: NodeJS.WriteStream; pause: () => Promise<void>; configFile?: string },
): Promise<string | undefined> {
  switch (action) {
    case "chat":
      await runConnectedChat(config, { configFile: io.configFile, input: io.input, output: io.output });
      return;
    case "resume": {
      const list = listSessions(config.paths);
      if (!list.length) return "no saved sessions yet";
      const rows = Math.max(5, (io.output.rows || 24) - 3);
      const shown = list.slice(0, rows);
      for (const l of renderSessionChoices(shown, io.output.columns || 80)) io.output.write(`${l}\n`);
      if (list.length > shown.length) io.output.write(`(${list.length - shown.length} older not shown; type an id)\n`);
      const r = await new LineEditor(new History(), { input: io.input, output: io.output }).read("number or id (Enter to go back): ");
      if (r.type !== "line" || !r.text.trim()) return;
      const id = pickSession(list, r.text) ?? r.text.trim();
      await runConnectedChat(config, { configFile: io.configFile, resume: id, input: io.input, output: io.output });
      return;
    }
    case "server": {
      if (!server.running) await prepareModel(config);
      const code = await runCommand(server.running ? ["serve", "--stop"] : ["serve"], io.configFile);
      if (code !== 0) {
        await io.pause();
        return;
      }
      return server.running ? "the server was stopped" : `the server is running (log: ${config.serverLogPath})`;
    }
    case "configure":
      await runCommand(["config", "--reset"], io.configFile);
      await io.pause();
      return;
    case "status":
      await runCommand(["status"], io.configFile);
      await io.pause();
      return;
    case "sessions": {
      const list = listSessions(config.paths);
      io.output.write(list.length ? renderSessionTable(list.slice(0, Math.max(5, (io.output.rows || 24) - 4))) : "no saved sessions yet\n");
      await io.pause();
      return;
    }
    case "benchmark":
      await runCommand(["benchmark"], io.configFile);
      await io.pause();
      return;
    case "model": {
      // the registry's models and the others prepared here, with what is set up; the choice goes to MODEL_REPO
      const choices = listModelChoices(config);
      choices.forEach((ch, i) => io.output.write(`${ch.current ? "*" : " "}[${i + 1}] ${ch.label}\n`));
      const r = await new LineEditor(new History(), { input: io.input, output: io.output }).read("number (Enter to go back): ");
      if (r.type !== "line" || !r.text.trim()) return;
      const ch = choices[Number(r.text.trim()) - 1];
      if (!/^\d+$/.test(r.text.trim()) || !ch) return `no model ${JSON.stringify(r.text.trim())}: give a number from 1 to ${choices.length}`;
      const code = await runCommand(["config", "set", "MODEL_REPO", ch.id], io.configFile);
      if (code !== 0) {
        await io.pause();
        return;
      }
      return `model: ${ch.id}${ch.prepared ? "" : " (set up when first used)"}${server.running ? "; the running server keeps its model until restarted" : ""}`;
    }
    case "quit":
      return;
  }
}
