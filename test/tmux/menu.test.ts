// The menu of `flashchat --no-tui` in an 80x24 terminal: numbers and arrows, chat and back, resume, sessions, quit.
import { afterAll, afterEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { Session, listSessions, loadSession } from "../../lib/chat/sessions.ts";
import { type Script, startStubServer } from "../chat/stub-server.ts";
import { createTerminalHome, hasTmux, root, Tmux } from "./tmux.ts";

const scripts: Script[] = [];
const stub = startStubServer(() => scripts.shift() ?? { content: ["(nothing scripted)"] });
const t = createTerminalHome("fc-tmux-menu-", { FLASHCHAT_SERVER_PORT: String(stub.server.port) });
const { home, env, sessionsDir } = t;
let term: Tmux | undefined;
afterEach(() => term?.kill());
afterAll(() => {
  stub.server.stop(true);
  t.remove();
});

const MENU = ["1. New chat", "2. Resume a session", "3. Stop the server", "4. Configure (setup wizard)", "5. Status", "6. Sessions", "7. Benchmarks", "8. Choose the model", "9. Quit"];

test.skipIf(!hasTmux)("menu: fits 80x24, arrows and numbers, a chat returns to the menu, resume by number, sessions, quit", async () => {
  const old = Session.create(sessionsDir, { now: 1_700_000_000_000 });
  old.append({ role: "user", content: "an old question" });
  old.append({ role: "assistant", content: "an old answer" });
  term = new Tmux(home, [process.execPath, join(root, "scripts/flashchat.ts"), "--no-tui"], env, { cwd: home });
  let screen = await term.waitFor("9. Quit", 20_000, "screen");
  for (const item of MENU) expect(screen).toContain(item);
  expect(screen).toContain("running at http://127.0.0.1:"); // the stub answers /health
  expect(screen.split("\n").length).toBeLessThanOrEqual(24);
  expect(Math.max(...screen.split("\n").map((l) => l.length))).toBeLessThanOrEqual(80);
  expect(screen).toContain("> 1. New chat"); // the selected item
  term.send("Down", "Down");
  screen = await term.waitFor("> 3. Stop the server", 5_000, "screen");

  // 1: a new chat, then /quit comes back to the menu
  scripts.push({ content: ["hi from the model"] });
  term.type("1");
  await term.waitFor("/help for commands", 10_000, "screen");
  term.type("hello menu");
  term.send("Enter");
  await term.waitFor("hi from the model", 10_000, "screen");
  term.type("/quit");
  term.send("Enter");
  await term.waitFor("9. Quit", 10_000, "screen");
  const newest = listSessions({ sessionsDir })[0]!;
  expect(loadSession({ sessionsDir }, newest.id).messages.map((m) => m.content)).toEqual(["hello menu", "hi from the model"]);

  // 2: resume shows a numbered list and accepts a number
  term.type("2");
  screen = await term.waitFor("number or id", 10_000, "screen");
  expect(screen).toContain(`[1] ${newest.id} (1 turn) hello menu`);
  expect(screen).toContain(`[2] ${old.id} (1 turn) an old question`);
  scripts.push({ content: ["continuing"] });
  stub.requests.length = 0;
  term.type("2");
  term.send("Enter");
  await term.waitFor(`resumed ${old.id}`, 10_000, "screen");
  await term.waitFor("/help for commands", 10_000, "screen");
  term.type("more");
  term.send("Enter");
  await term.waitFor("continuing", 10_000, "screen");
  expect(stub.requests[0].messages.map((m: { content: string }) => m.content)).toEqual(["an old question", "an old answer", "more"]);
  term.send("C-d");
  await term.waitFor("9. Quit", 10_000, "screen");

  // 6: the sessions table, Enter to come back
  term.type("6");
  screen = await term.waitFor("Press Enter to return", 10_000, "screen");
  expect(screen).toContain("#  ID                  CREATED           TURNS  FIRST WORDS");
  expect(screen).toContain(old.id);
  term.send("Enter");
  await term.waitFor("9. Quit", 10_000, "screen");

  // 8: the models to choose from (the registry's, with what is set up); a number sets MODEL_REPO
  term.type("8");
  screen = await term.waitFor("number (Enter to go back)", 10_000, "screen");
  expect(screen).toContain("[1] qwen3.5-397b  Qwen3.5-397B-A17B — not downloaded");
  expect(screen).toContain("[4] demo  demo (tiny, random weights) — not downloaded");
  term.type("4");
  term.send("Enter");
  screen = await term.waitFor("model: demo (set up when first used)", 15_000, "screen");
  expect(screen).toContain("model  demo");
  expect(readFileSync(join(home, "c/flashchat/config"), "utf8")).toMatch(/^MODEL_REPO="?demo"?$/m);

  // q quits
  term.type("q");
  await term.waitFor("[exited 0]", 10_000, "screen");
}, 90_000);
