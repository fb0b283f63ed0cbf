// `flashchat chat` in a real terminal: type, watch the reply stream in, Ctrl-C it, leave, resume.
import { afterAll, afterEach, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { loadSession } from "../../lib/chat/sessions.ts";
import { type Script, startStubServer } from "../chat/stub-server.ts";
import { createTerminalHome, hasTmux, root, Tmux } from "./tmux.ts";

const scripts: Script[] = [];
const stub = startStubServer(() => scripts.shift() ?? { content: ["(nothing scripted)"] });
const t = createTerminalHome("fc-tmux-chat-", { FLASHCHAT_SERVER_PORT: String(stub.server.port) });
const { home, env, sessionsDir } = t;
let term: Tmux | undefined;
afterEach(() => term?.kill());
afterAll(() => {
  stub.server.stop(true);
  t.remove();
});

const chat = (...args: string[]) => new Tmux(home, [process.execPath, join(root, "scripts/chat.ts"), ...args], env, { cwd: home });

test.skipIf(!hasTmux)("chat: stream a reply, Ctrl-C the next one, quit with Ctrl-D, resume and find every message", async () => {
  scripts.push(
    { content: ["# Title\n", "Some **bold** text\n", "- item\n"], delayMs: 20 },
    { content: Array.from({ length: 400 }, (_, i) => `word${i} `), delayMs: 25 },
  );
  term = chat();
  await term.waitFor("/help for commands");
  term.type("hello there");
  term.send("Enter");
  let screen = await term.waitFor(/tokens · .* tok\/s · first token/);
  expect(screen).toContain("> hello there\nTitle\nSome bold text\n• item\n");
  term.type("tell me a long story");
  term.send("Enter");
  await term.waitFor("word5 ");
  term.type("typed ahead");
  await Bun.sleep(100);
  term.send("C-c");
  screen = await term.waitFor("[stopped · the session keeps what arrived]");
  expect(screen).not.toContain("word399");
  // the prompt is back, with what was typed during the reply
  await term.waitFor(/\n> typed ahead\n/, 5_000, "screen");
  term.send("C-u");
  term.send("C-d");
  screen = await term.waitFor(/resume with: flashchat chat --resume (chat-\d+)/);
  const id = /--resume\s+(chat-\d+)/.exec(screen.replace(/\n/g, ""))![1]!;
  expect(readdirSync(sessionsDir)).toEqual([`${id}.jsonl`]);
  const saved = loadSession({ sessionsDir }, id).messages;
  expect(saved.map((m) => [m.role, m.interrupted ?? false])).toEqual([
    ["user", false],
    ["assistant", false],
    ["user", false],
    ["assistant", true],
  ]);
  expect(saved[3]!.content).toMatch(/^word0 word1 word2 word3 word4 word5 /);
  term.kill();

  // come back: the last turns are shown and the whole history goes to the model
  scripts.push({ content: ["welcome back"] });
  stub.requests.length = 0;
  term = chat("--resume", id);
  screen = await term.waitFor("/help for commands");
  expect(screen).toContain(`resumed ${id} · 2 turns`);
  expect(screen).toContain("> hello there");
  expect(screen).toContain("[interrupted]");
  term.type("and now?");
  term.send("Enter");
  await term.waitFor("welcome back");
  expect(stub.requests[0].messages.map((m: { role: string }) => m.role)).toEqual(["user", "assistant", "user", "assistant", "user"]);
  expect(stub.requests[0].messages[4].content).toBe("and now?");
  term.type("/quit");
  term.send("Enter");
  await term.waitFor("[exited 0]");
  expect(loadSession({ sessionsDir }, id).messages.map((m) => m.content).slice(-2)).toEqual(["and now?", "welcome back"]);
}, 60_000);

test.skipIf(!hasTmux)("chat: line editing, multi-line input, history across runs, /help", async () => {
  scripts.push({ content: ["one"] });
  stub.requests.length = 0;
  term = chat();
  await term.waitFor("/help for commands");
  term.type("world foo");
  term.send("C-w"); // delete "foo"
  term.send("C-a");
  term.type("hello ");
  term.send("C-e");
  term.type("first line");
  term.send("M-Enter"); // a new line inside the message
  term.type("second line\\");
  term.send("Enter"); // trailing backslash: continue
  term.type("third");
  let screen = await term.waitFor("… third", 10_000, "screen");
  expect(screen).toContain("> hello world first line\n… second line\n… third");
  term.send("Enter");
  await term.waitFor(/one\n.*tokens/);
  expect(stub.requests[0].messages).toEqual([{ role: "user", content: "hello world first line\nsecond line\nthird" }]);
  // a paste keeps its lines in one message
  scripts.push({ content: ["pasted ok"] });
  term.paste("pasted line A\npasted line B");
  await term.waitFor("… pasted line B", 10_000, "screen");
  term.send("Enter");
  await term.waitFor("pasted ok");
  expect(stub.requests[1].messages.at(-1)).toEqual({ role: "user", content: "pasted line A\npasted line B" });
  term.type("/help");
  term.send("Enter");
  await term.waitFor("/think on|off");
  term.send("C-d");
  await term.waitFor("[exited 0]");
  term.kill();

  // a new run recalls the earlier input with the up arrow
  scripts.push({ content: ["two"] });
  term = chat();
  await term.waitFor("/help for commands");
  term.send("Up"); // "/help"
  term.send("Up"); // the pasted message (the cursor is on its last line: up moves inside it first)
  term.send("Up");
  term.send("Up"); // the three-line message
  screen = await term.waitFor("… third", 10_000, "screen");
  term.send("Enter");
  await term.waitFor(/two\n.*tokens/);
  expect(stub.requests[2].messages).toEqual([{ role: "user", content: "hello world first line\nsecond line\nthird" }]);
  term.send("C-d");
  await term.waitFor("[exited 0]");
}, 60_000);

test.skipIf(!hasTmux)("colour: styled on a terminal, plain with NO_COLOR=1 or COLOR_OUTPUT=0", async () => {
  const styled = /\x1b\[[0-9;]*m/;
  for (const [extra, coloured] of [[{}, true], [{ NO_COLOR: "1" }, false], [{ FLASHCHAT_COLOR_OUTPUT: "0" }, false]] as const) {
    scripts.push({ content: ["some **bold** words"] });
    term = new Tmux(home, [process.execPath, join(root, "scripts/chat.ts")], { ...env, ...extra }, { cwd: home });
    await term.waitFor("/help for commands");
    term.type("colour?");
    term.send("Enter");
    await term.waitFor(/some .*bold.* words/);
    const line = term.styledScreen().split("\n").find((l) => l.includes("words"))!;
    expect({ extra, styled: styled.test(line) }).toEqual({ extra, styled: coloured });
    expect(term.screen()).toContain(coloured ? "some bold words" : "some **bold** words");
    term.kill();
  }
}, 60_000);

test.skipIf(!hasTmux)("chat at 50 columns: words wrap whole, a table is drawn to fit, code is coloured; --resume alone offers the numbered list", async () => {
  scripts.push({
    content: [
      "Streaming experts from the disk keeps the resident memory small while the model runs.\n\n",
      "| Model | Size |\n|:--|--:|\n",
      "| demo | 60 MB |\n| qwen3.5-397b | 209 GB |\n\n",
      "```python\nreturn 42\n```\n",
    ],
    delayMs: 20,
  });
  term = new Tmux(home, [process.execPath, join(root, "scripts/chat.ts")], env, { cwd: home, cols: 50 });
  await term.waitFor("/help for commands");
  term.type("layout please");
  term.send("Enter");
  const screen = await term.waitFor(/tokens · .* tok\/s/);
  expect(screen).toContain("Streaming experts from the disk keeps the resident\nmemory small while the model runs.\n\n┌");
  expect(screen).toContain("┌──────────────┬────────┐\n│ Model        │   Size │\n├──────────────┼────────┤\n│ demo         │  60 MB │\n│ qwen3.5-397b │ 209 GB │\n└──────────────┴────────┘");
  const styled = term.styledScreen();
  expect(styled).toMatch(/\x1b\[35m(\x1b\[\d+m)*return/); // the keyword in its colour (tmux may add its own codes)
  expect(styled).toMatch(/\x1b\[33m42/);
  term.send("C-d");
  await term.waitFor("[exited 0]");
  term.kill();

  // --resume with no value: the numbered list, a wrong answer says why and asks again, a number resumes
  const id = readdirSync(sessionsDir).map((f) => f.replace(/\.jsonl$/, "")).sort().at(-1)!;
  term = chat("--resume");
  await term.waitFor("session number or id (Enter: a new chat):");
  expect(term.screen()).toMatch(/\[1\] chat-\d+/);
  term.type("99");
  term.send("Enter");
  await term.waitFor("no session number 99");
  term.type("1");
  term.send("Enter");
  await term.waitFor("/help for commands");
  expect(term.history()).toContain(`resumed ${id}`);
  term.send("C-d");
  await term.waitFor("[exited 0]");
}, 60_000);
