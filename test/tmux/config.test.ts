// The setup wizard (`config --reset`) in a real terminal: the model picked from the list, each answer checked as
// it is given (asked again with the reason), the answers saved.
import { afterAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import { createTerminalHome, hasTmux, root, Tmux } from "./tmux.ts";

const t = createTerminalHome("fc-tmux-config-");
let term: Tmux | undefined;
afterAll(() => {
  term?.kill();
  t.remove();
});

test.skipIf(!hasTmux)("config --reset: the model from a list; abc for temperature and 99999 for the port are refused on the spot", async () => {
  term = new Tmux(t.home, [process.execPath, join(root, "scripts/config.ts"), "--reset"], t.env, { cwd: t.home, cols: 100, rows: 40 });
  let screen = await term.waitFor("(MODEL_REPO)");
  expect(screen).toContain("demo  demo (tiny, random weights)");
  expect(screen).toContain("Another model…");
  term.send("Down", "Down", "Down"); // qwen3.5-397b (the default's repo) -> qwen3.6-35b -> qwen3-next-80b -> demo
  await term.waitFor("generated here, no download");
  term.send("Enter");
  await term.waitFor("(MAX_TOKENS)");
  term.send("Enter");
  await term.waitFor("(TEMPERATURE)");
  term.type("abc");
  term.send("Enter");
  await term.waitFor('"abc" is not a valid TEMPERATURE: expected a number from 0 to 2. Try again.');
  term.type("0.4");
  term.send("Enter");
  await term.waitFor("(TOP_P)");
  term.send("Enter");
  await term.waitFor("(SERVER_PORT)");
  term.type("99999");
  term.send("Enter");
  await term.waitFor('"99999" is not a valid SERVER_PORT: expected a whole number from 1 to 65535');
  term.type("8123");
  term.send("Enter");
  await term.waitFor("(SERVER_HOST)");
  term.send("Enter");
  await term.waitFor("(SHOW_THINKING)");
  term.send("Enter");
  await term.waitFor("(COLOR_OUTPUT)");
  term.send("Enter");
  screen = await term.waitFor("[exited 0]");
  expect(screen).toContain("settings written to");
  const active = readFileSync(join(t.home, "c/flashchat/config"), "utf8").split("\n").filter((l) => l && !l.startsWith("#"));
  expect(active).toEqual(['MODEL_REPO="demo"', 'MAX_TOKENS=""', 'TEMPERATURE="0.4"', 'TOP_P="0.9"', 'SERVER_PORT="8123"', 'SERVER_HOST="127.0.0.1"', 'SHOW_THINKING="0"', 'COLOR_OUTPUT="1"']);
}, 60_000);

test.skipIf(!hasTmux)("config edit on a terminal: an invalid edit is listed and offered for another edit; the fixed one is saved", async () => {
  term?.kill();
  const editor = join(t.home, "editor.sh");
  // first run: a bad temperature; second run (the same copy): fix it
  writeFileSync(editor, '#!/bin/sh\nif grep -q abc "$1"; then sed -i "s/abc/0.5/" "$1"; else echo \'TEMPERATURE="abc"\' >> "$1"; fi\n', { mode: 0o755 });
  term = new Tmux(t.home, [process.execPath, join(root, "scripts/config.ts"), "edit"], { ...t.env, EDITOR: editor }, { cwd: t.home, cols: 100, rows: 30 });
  await term.waitFor('invalid TEMPERATURE "abc": expected a number from 0 to 2');
  await term.waitFor("Edit it again?");
  term.send("Enter");
  const screen = await term.waitFor("[exited 0]");
  expect(screen).toContain("saved");
  const active = readFileSync(join(t.home, "c/flashchat/config"), "utf8").split("\n").filter((l) => l && !l.startsWith("#"));
  expect(active.at(-1)).toBe('TEMPERATURE="0.5"');
}, 60_000);
