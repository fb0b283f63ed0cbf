// The full-screen TUI of a bare `flashchat`, driven in tmux on the demo model (set up and served from a temp
// HOME): chat a turn, the log shows the request, a setting saved and read back by `config get`, a long reply
// streams and stops, the session resumes, renames and deletes, 80x24 and 200x60, quit restores the terminal;
// after SIGKILL the session file is intact and `reset` restores the terminal.
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import { listSessions, loadSession, Session } from "../../lib/chat/sessions.ts";
import { unusedPort } from "../helpers/cli.ts";
import { createTerminalHome, hasTmux, root, Tmux } from "../tmux/tmux.ts";

const port = unusedPort();
const t = createTerminalHome("fc-tui-", { FLASHCHAT_MODEL_REPO: "demo", FLASHCHAT_SERVER_PORT: port });
const { home, env, sessionsDir } = t;
const flashchat = join(root, "scripts/flashchat.ts");
const bun = process.execPath;
let term: Tmux | undefined;
/** Every terminal started, killed at the end whatever happened. */
const terms: Tmux[] = [];
const cleanups: (() => void)[] = [];
const openTerminal = (...args: ConstructorParameters<typeof Tmux>) => {
  const t = new Tmux(...args);
  terms.push(t);
  return t;
};

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

function cli(...args: string[]) {
  return Bun.spawnSync([bun, flashchat, ...args], { env: { ...env }, cwd: home, stdout: "pipe", stderr: "pipe" });
}

afterAll(() => {
  for (const t of terms) t.kill();
  for (const c of cleanups) c();
  cli("serve", "--stop");
  t.remove();
}, 60_000);

/** `stty -a` of a sane terminal: canonical mode and echo on. */
function expectSaneStty(text: string) {
  expect(text).toMatch(/(^|\s)icanon(\s|$)/);
  expect(text).toMatch(/(^|\s)echo(\s|$)/);
  expect(text).not.toMatch(/(^|\s)-icanon(\s|$)/);
}

/** The reply area's text: the screen without the first three and last three lines (status, tabs, input, footer). */
const replyChars = (screen: string) => screen.split("\n").slice(3, -3).join("").replace(/\s/g, "").length;

/**
 * Text drawn in a colour: pieces of the screen shown with a foreground colour other than the terminal's default
 * (non-blank text only: OpenTUI puts a foreground code on blank cells, which shows nothing), or on a background colour.
 */
function colouredText(styled: string): string[] {
  const out: string[] = [];
  let fgSet = false;
  let bgSet = false;
  for (const piece of styled.split(/(\x1b\[[0-9;:]*m)/)) {
    const m = /^\x1b\[([0-9;:]*)m$/.exec(piece);
    if (!m) {
      if ((fgSet && piece.trim()) || (bgSet && piece.replace(/\n/g, ""))) out.push(piece);
      continue;
    }
    const codes = m[1]!.split(/[;:]/).map(Number);
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i]!;
      if (c === 0 || Number.isNaN(c)) fgSet = bgSet = false;
      else if (c === 39) fgSet = false;
      else if (c === 49) bgSet = false;
      else if (c === 38 || c === 48) {
        if (c === 38) fgSet = true;
        else bgSet = true;
        i += codes[i + 1] === 5 ? 2 : 4; // 38;5;N or 38;2;R;G;B
      } else if ((c >= 30 && c <= 37) || (c >= 90 && c <= 97)) fgSet = true;
      else if ((c >= 40 && c <= 47) || (c >= 100 && c <= 107)) bgSet = true;
    }
  }
  return out;
}

async function waitUntil(what: string, ok: () => boolean, timeoutMs: number, screen: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; screen:\n${screen()}`);
    await Bun.sleep(50);
  }
}

/** Esc out of the chat input, then wait until it has let go: a key sent right behind the ESC byte would be read
 *  with it as one Alt+key sequence. */
async function leaveInput(t: Tmux): Promise<void> {
  t.send("Escape");
  await waitUntil("the input to let go", () => !t.screen().includes("leaves the input"), 10_000, () => t.screen());
}

test.skipIf(!hasTmux)("tui: chat, log, settings, stop, sessions, resize, quit restores the terminal", async () => {
  // a short first reply; MAX_TOKENS in the user file (not the environment) so the Settings view can change it
  const configDir = join(home, "c/flashchat");
  mkdirSync(configDir, { recursive: true });
  writeFileSync(join(configDir, "config"), 'MAX_TOKENS="12"\n');
  const old = Session.create(sessionsDir, { now: 1_700_000_000_000 });
  old.append({ role: "user", content: "an old question" });
  old.append({ role: "assistant", content: "an old answer" });

  const stty = join(home, "stty-after-quit.txt");
  term = openTerminal(home, ["sh", "-c", `${q(bun)} ${q(flashchat)}; echo "[tui exited $?]"; stty -a > ${q(stty)}`], env, { cwd: home, cols: 80, rows: 24 });
  let screen = await term.waitFor(`server off (:${port})`, 60_000, "screen");
  expect(screen).toContain("[1 Chat]");
  expect(term.display("#{alternate_on}")).toBe("1");
  const fits = (s: string, cols: number, rows: number) => {
    const lines = s.replace(/\n$/, "").split("\n");
    expect(lines.length).toBeLessThanOrEqual(rows);
    expect(Math.max(...lines.map((l) => [...l].length))).toBeLessThanOrEqual(cols);
  };
  fits(screen, 80, 24);

  // chat: the first message sets the demo model up, starts the server, and the reply ends with its stats
  term.type("Hello TUI");
  term.send("Enter");
  screen = await term.waitFor(/12 tokens · [\d.]+ tok\/s · first\s+token [\d.]+ s/, 240_000, "screen");
  expect(screen).toContain("> Hello TUI");
  // the header follows the server by polling /health every 2 s: it may still show the start-up state
  screen = await term.waitFor(`server :${port} ok`, 30_000, "screen");
  const [first] = listSessions({ sessionsDir });
  expect(first!.id).not.toBe(old.id);
  const saved = loadSession({ sessionsDir }, first!.id).messages;
  expect(saved.map((m) => m.role)).toEqual(["user", "assistant"]);
  expect(saved[1]!.stats?.completion_tokens).toBe(12);
  expect(saved[1]!.model).toBe("demo");

  // the log view shows the request
  await leaveInput(term);
  term.type("2");
  screen = await term.waitFor("POST /v1/chat/completions 200", 15_000, "screen");
  expect(screen).toContain("[2 Log]");

  // the status view: the kernel level, experts read per token and the page-cache hit rate, from the engine
  term.type("5");
  screen = await term.waitFor(/experts read\s+[\d.]+ per token \([1-9]\d* over [1-9]\d* tokens/, 20_000, "screen");
  expect(screen).toMatch(/page cache\s+\d+(\.\d)?% of expert bytes were in the page cache/);
  expect(screen).toMatch(/backend\s+cpu\/(generic|avx2|avx512|avx512vnni) · \d+ threads/);
  expect(screen).toMatch(/engine memory\s+[\d.]+ \w+ resident · dense weights/);
  // and the status line, once the chat connected: backend with its kernel level
  expect(screen.split("\n")[0]).toMatch(/cpu\/(generic|avx2|avx512|avx512vnni)/);

  // settings: checked as typed, saved atomically, read back by `config get`
  term.type("4");
  await term.waitFor("[4 Settings]", 10_000, "screen");
  term.type("/");
  term.type("MAX_TOKENS");
  term.send("Enter");
  await term.waitFor(/> MAX_TOKENS\s+"12"/, 10_000, "screen");
  term.send("Enter");
  await term.waitFor('MAX_TOKENS=12', 10_000, "screen");
  term.send("C-u");
  term.type("abc");
  await term.waitFor("✗ MAX_TOKENS expects a whole number from 1 to 1048576", 10_000, "screen");
  term.send("C-u");
  term.type("4000");
  await term.waitFor("✓ MAX_TOKENS accepts it", 10_000, "screen");
  term.send("Enter");
  await term.waitFor('MAX_TOKENS="4000" saved · a running server uses it after :restart', 10_000, "screen");
  expect(cli("config", "get", "MAX_TOKENS").stdout.toString().trim()).toBe("4000");
  await term.waitFor(/> MAX_TOKENS\s+"4000"/, 10_000, "screen");
  // the server read MAX_TOKENS when it started: :restart stops it, the next message starts it again
  term.type(":");
  term.type("restart");
  term.send("Enter");
  await term.waitFor("stopped the server", 30_000, "screen");
  await term.waitFor(`server off (:${port})`, 10_000, "screen");

  // a long reply streams (the text grows while it says "replying…"), and Esc stops it
  term.type("1");
  await term.waitFor("[1 Chat]", 10_000, "screen");
  term.type("Tell me more");
  term.send("Enter");
  await term.waitFor("replying…", 120_000, "screen");
  const before = replyChars(term.screen());
  await waitUntil("the reply to grow", () => replyChars(term!.screen()) > before + 20, 60_000, () => term!.screen());
  term.send("Escape");
  screen = await term.waitFor("[stopped · the session keeps what arrived]", 20_000, "screen");
  const stopped = loadSession({ sessionsDir }, first!.id).messages;
  expect(stopped.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
  expect(stopped[3]!.interrupted).toBe(true);
  // what arrived is kept: the fixture model's reply may still be in its thinking block when Esc lands
  expect(stopped[3]!.content.length + (stopped[3]!.reasoning ?? "").length).toBeGreaterThan(0);

  // help overlay: ? opens it, any key closes it
  await leaveInput(term);
  term.type("?");
  await term.waitFor("flashchat keys", 10_000, "screen");
  term.type("x");
  await waitUntil("the help to close", () => !term!.screen().includes("flashchat keys"), 10_000, () => term!.screen());

  // sessions: the turn just made is listed first; Enter resumes it in the chat view
  term.type("3");
  screen = await term.waitFor("2 sessions", 10_000, "screen");
  expect(screen).toMatch(new RegExp(`>\\s+1\\s+${first!.id}.*2 turns\\s+Hello TUI`));
  expect(screen).toContain(old.id);
  term.send("Enter");
  screen = await term.waitFor(`resumed ${first!.id} · 2 turns`, 10_000, "screen");
  expect(screen).toContain("[1 Chat]");
  screen = await term.waitFor("[interrupted]", 10_000, "screen"); // the stopped reply, as saved (drawn on the next frame)
  // the first reply's text is drawn between its message and its stats line
  const between = screen.slice(screen.indexOf("> Hello TUI") + "> Hello TUI".length, screen.indexOf("12 tokens ·"));
  expect(between.replace(/\s/g, "").length).toBeGreaterThan(0);

  // delete asks first: n keeps the file, y deletes it
  await leaveInput(term);
  term.type("3");
  await term.waitFor("2 sessions", 10_000, "screen");
  term.type("j");
  term.type("d");
  await term.waitFor(`delete session ${old.id} (1 turn)? [y/N]`, 10_000, "screen");
  term.type("n");
  await term.waitFor("cancelled", 10_000, "screen");
  expect(existsSync(old.path)).toBe(true);
  term.type("d");
  await term.waitFor("[y/N]", 10_000, "screen");
  term.type("y");
  await term.waitFor(`deleted ${old.id}`, 10_000, "screen");
  expect(existsSync(old.path)).toBe(false);

  // rename: the file gets the new name, its messages unchanged
  term.type("g");
  term.type("r");
  await term.waitFor(`rename ${first!.id} to:`, 10_000, "screen");
  term.send("C-u");
  term.type("my talk");
  await term.waitFor("✗ invalid session id", 10_000, "screen");
  term.send("C-u");
  term.type("my-talk");
  term.send("Enter");
  await term.waitFor(`renamed ${first!.id} to my-talk`, 10_000, "screen");
  expect(existsSync(join(sessionsDir, `${first!.id}.jsonl`))).toBe(false);
  expect(loadSession({ sessionsDir }, "my-talk").messages).toEqual(stopped);

  // resize: 200x60 uses the room, back to 80x24 still fits
  term.resize(200, 60);
  await waitUntil("a 60-row layout", () => term!.screen().replace(/\n$/, "").split("\n").length === 60, 15_000, () => term!.screen());
  screen = term.screen();
  fits(screen, 200, 60);
  expect(screen).toContain("[3 Sessions]");
  expect(screen.split("\n").at(-2)).toContain("j/k move");
  term.resize(80, 24);
  await waitUntil("a 24-row layout", () => term!.screen().replace(/\n$/, "").split("\n").length <= 24 && term!.screen().includes("[3 Sessions]"), 15_000, () => term!.screen());
  fits(term.screen(), 80, 24);

  // quit: the terminal is as it was (normal screen, cursor shown, mouse off, cooked mode)
  term.type("q");
  await term.waitFor("[tui exited 0]", 15_000, "screen");
  await waitUntil("stty output", () => existsSync(stty) && readFileSync(stty, "utf8").includes("speed"), 10_000, () => term!.screen());
  expect(term.display("#{alternate_on} #{cursor_flag} #{mouse_any_flag}")).toBe("0 1 0");
  expectSaneStty(readFileSync(stty, "utf8"));
  term.kill();
}, 420_000);

test.skipIf(!hasTmux)("tui: after SIGKILL mid-reply the session file is intact and `reset` restores the terminal", async () => {
  // the server of the test above is still running (MAX_TOKENS=4000): this TUI uses it
  const pidFile = join(home, "tui.pid");
  const stty = join(home, "stty-after-reset.txt");
  const exitFile = join(home, "tui-exit.txt");
  const script = `echo $$ > ${q(pidFile)}; ${q(bun)} ${q(flashchat)}; echo $? > ${q(exitFile)}; reset; stty -a > ${q(stty)}; echo "[reset done]"`;
  // this TUI's session is the one that was not there before (the sessions of the test above have partial
  // records too, and this one's file appears only once the server takes the message)
  const earlier = new Set(listSessions({ sessionsDir }).map((s) => s.id));
  term = openTerminal(home, ["sh", "-c", script], env, { cwd: home, cols: 80, rows: 24 });
  await term.waitFor("[1 Chat]", 60_000, "screen");
  term.type("A long story please");
  term.send("Enter");
  await term.waitFor("replying…", 60_000, "screen");
  const newest = () => listSessions({ sessionsDir }).find((s) => !earlier.has(s.id));
  // wait until part of the reply is journalled (partial records, at most half a second behind the screen)
  await waitUntil("a journalled partial reply", () => Boolean(newest() && readFileSync(newest()!.path, "utf8").includes('"type":"partial"')), 60_000, () => term!.screen());
  const shPid = readFileSync(pidFile, "utf8").trim();
  const child = Bun.spawnSync(["pgrep", "-P", shPid]).stdout.toString().trim().split("\n")[0]!;
  expect(Number(child)).toBeGreaterThan(0);
  process.kill(Number(child), "SIGKILL");
  await term.waitFor("[reset done]", 30_000, "screen");
  expect(readFileSync(exitFile, "utf8").trim()).toBe("137");
  // reset turns the cursor, mouse reporting and cooked mode back (tmux keeps its alternate screen through a reset)
  expect(term.display("#{cursor_flag} #{mouse_any_flag}")).toBe("1 0");
  expectSaneStty(readFileSync(stty, "utf8"));

  const loaded = loadSession({ sessionsDir }, newest()!.id);
  expect(loaded.warnings).toEqual([]);
  expect(loaded.messages.map((m) => m.role)).toEqual(["user", "assistant"]);
  expect(loaded.messages[0]!.content).toBe("A long story please");
  expect(loaded.messages[1]!.interrupted).toBe(true);
  expect(loaded.messages[1]!.content.length).toBeGreaterThan(0);
}, 240_000);

test.skipIf(!hasTmux)("tui: NO_COLOR draws without colour; Ctrl-C and SIGTERM quit and restore the terminal", async () => {
  // a home of its own: no server runs for it
  const t2 = createTerminalHome("fc-tui-colour-", { FLASHCHAT_MODEL_REPO: "demo" });
  const { home, env } = t2;
  cleanups.push(t2.remove);
  const exitFile = join(home, "tui-exit-2.txt");
  const pidFile = join(home, "tui-2.pid");
  const run = (extra: string) => `echo $$ > ${q(pidFile)}; ${extra} ${q(bun)} ${q(flashchat)}; echo $? > ${q(exitFile)}; echo "[tui done]"`;
  // colour by default: the status line is drawn in colour
  term = openTerminal(home, ["sh", "-c", run("")], { ...env, FLASHCHAT_SERVER_PORT: unusedPort() }, { cwd: home, cols: 80, rows: 24 });
  await term.waitFor("server off", 60_000, "screen");
  expect(term.styledScreen()).toMatch(/\x1b\[[0-9;]*38[;:]/);
  // the status panel opens with what `flashchat status` reports and the server's state
  await leaveInput(term);
  term.type("5");
  const status = await term.waitFor(/model\s+demo/, 30_000, "screen");
  expect(status).toContain("[5 Status]");
  expect(status).toMatch(/server state\s+not running/);
  term.send("C-c");
  await term.waitFor("[tui done]", 15_000, "screen");
  expect(readFileSync(exitFile, "utf8").trim()).toBe("0");
  expect(term.display("#{alternate_on} #{cursor_flag} #{mouse_any_flag}")).toBe("0 1 0");
  term.kill();

  // NO_COLOR: no colour codes at all; SIGTERM quits with 143 and restores the terminal
  term = openTerminal(home, ["sh", "-c", run("NO_COLOR=1")], { ...env, FLASHCHAT_SERVER_PORT: unusedPort() }, { cwd: home, cols: 80, rows: 24 });
  await term.waitFor("server off", 60_000, "screen");
  expect(colouredText(term.styledScreen())).toEqual([]);
  const child = Bun.spawnSync(["pgrep", "-P", readFileSync(pidFile, "utf8").trim()]).stdout.toString().trim().split("\n")[0]!;
  process.kill(Number(child), "SIGTERM");
  await term.waitFor("[tui done]", 15_000, "screen");
  expect(readFileSync(exitFile, "utf8").trim()).toBe("143");
  expect(term.display("#{alternate_on} #{cursor_flag} #{mouse_any_flag}")).toBe("0 1 0");
}, 120_000);

/** 1-based column of `label` on screen line `row` (1-based), for a click on it. */
function columnOf(screen: string, row: number, label: string): number {
  const line = screen.split("\n")[row - 1] ?? "";
  const at = line.indexOf(label);
  if (at < 0) throw new Error(`"${label}" is not on line ${row}:\n${screen}`);
  return at + 1;
}

// the accent colour (status line) of each palette as tmux's capture shows it: 24-bit, or the nearest of 256
// colours (tmux without RGB support for the outer terminal: -f /dev/null)
const DARK_ACCENT = /\x1b\[(1;)?38;(2;136;192;208|5;110)m/;
const LIGHT_ACCENT = /\x1b\[(1;)?38;(2;5;80;174|5;25)m/;

test.skipIf(!hasTmux)("tui: the mouse opens a tab, scrolls and selects in a list; TUI_THEME forces the light theme, :set changes it", async () => {
  const t3 = createTerminalHome("fc-tui-mouse-", { FLASHCHAT_MODEL_REPO: "demo", FLASHCHAT_SERVER_PORT: unusedPort() });
  cleanups.push(t3.remove);
  for (let i = 0; i < 30; i++) Session.create(t3.sessionsDir, { now: 1_700_000_000_000 + i * 60_000 }).append({ role: "user", content: `question ${i}` });
  mkdirSync(join(t3.home, "c/flashchat"), { recursive: true });
  writeFileSync(join(t3.home, "c/flashchat/config"), 'TUI_THEME="light"\n');
  term = openTerminal(t3.home, [bun, flashchat], t3.env, { cwd: t3.home, cols: 80, rows: 24 });
  let screen = await term.waitFor("server off", 60_000, "screen");
  // TUI_THEME=light: the light palette, not the dark one
  expect(term.styledScreen()).toMatch(LIGHT_ACCENT);
  expect(term.styledScreen()).not.toMatch(DARK_ACCENT);

  // a click on "3 Sessions" in the tabs row (line 2) opens the view; the chat input keeps no focus on the way
  term.click(columnOf(screen, 2, "3 Sessions"), 2);
  screen = await term.waitFor("30 sessions", 15_000, "screen");
  expect(screen).toContain("[3 Sessions]");
  expect(screen).toMatch(/>\s+1\s+\S+/);
  // the wheel moves the selection three rows a notch; a click selects the row under it
  term.wheel("down", 10, 10);
  term.wheel("down", 10, 10);
  await term.waitFor(/>\s+7\s+\S+/, 10_000, "screen");
  screen = term.screen();
  const lines = screen.split("\n");
  const row = lines.findIndex((l) => /^\s+4\s+\S+/.test(l));
  expect(row).toBeGreaterThan(1);
  term.click(10, row + 1);
  await term.waitFor(/>\s+4\s+\S+/, 10_000, "screen");
  term.wheel("up", 10, 10);
  await term.waitFor(/>\s+1\s+\S+/, 10_000, "screen");
  // the log tab, by the mouse too
  term.click(columnOf(term.screen(), 2, "2 Log"), 2);
  await term.waitFor("[2 Log]", 10_000, "screen");

  // :set TUI_THEME dark: saved, and the screen is redrawn in the dark palette at once
  term.type(":");
  term.type("set TUI_THEME dark");
  term.send("Enter");
  await term.waitFor('TUI_THEME="dark" saved', 10_000, "screen");
  await waitUntil("the dark palette", () => DARK_ACCENT.test(term!.styledScreen()), 10_000, () => term!.screen());
  expect(term.styledScreen()).not.toMatch(LIGHT_ACCENT);
  term.type("q");
  await term.waitFor("[exited 0]", 15_000, "screen");
  term.kill();
}, 120_000);

test.skipIf(!hasTmux)("tui: TUI_THEME=auto follows the terminal's background (its answer to OSC 11)", async () => {
  const t4 = createTerminalHome("fc-tui-bg-", { FLASHCHAT_MODEL_REPO: "demo", FLASHCHAT_SERVER_PORT: unusedPort() });
  cleanups.push(t4.remove);
  const go = join(t4.home, "go");
  // the TUI starts once tmux reports a white background (window-style), so that its first question gets that answer
  const script = `while [ ! -e ${q(go)} ]; do sleep 0.05; done; exec ${q(bun)} ${q(flashchat)}`;
  term = openTerminal(t4.home, ["sh", "-c", script], t4.env, { cwd: t4.home, cols: 80, rows: 24 });
  term.option("window-style", "bg=#ffffff");
  writeFileSync(go, "");
  await term.waitFor("server off", 60_000, "screen");
  await waitUntil("the light palette", () => LIGHT_ACCENT.test(term!.styledScreen()), 10_000, () => term!.styledScreen());
  expect(term.styledScreen()).not.toMatch(DARK_ACCENT);
  term.kill();

  // the same terminal without a background colour set: tmux does not answer, the theme stays dark
  term = openTerminal(t4.home, [bun, flashchat], t4.env, { cwd: t4.home, cols: 80, rows: 24 });
  await term.waitFor("server off", 60_000, "screen");
  expect(term.styledScreen()).toMatch(DARK_ACCENT);
  term.kill();
}, 120_000);

test.skipIf(!hasTmux)("tui: the config is read after the first frame; its warnings show in the footer and on quit, an invalid value closes the TUI with the error", async () => {
  const t4 = createTerminalHome("fc-tui-config-", { FLASHCHAT_MODEL_REPO: "demo", FLASHCHAT_SERVER_PORT: unusedPort() });
  cleanups.push(t4.remove);
  mkdirSync(join(t4.home, "c/flashchat"), { recursive: true });
  writeFileSync(join(t4.home, "c/flashchat/config"), 'TUI_THEME="light"\nNO_SUCH_SETTING="1"\n');
  const steps = join(t4.home, "steps.txt");
  // -v: the start-up steps go to a file; the first frame is drawn before the config is read
  term = openTerminal(t4.home, ["sh", "-c", `${q(bun)} ${q(flashchat)} -v 2>${q(steps)}; cat ${q(steps)} | grep -v '^\\[debug\\]' ; echo "[tui done]"`], t4.env, { cwd: t4.home, cols: 120, rows: 24 });
  const screen = await term.waitFor("unknown setting NO_SUCH_SETTING", 60_000, "screen");
  expect(screen).toContain("[1 Chat]");
  expect(screen).toContain("flashchat · demo");
  // the theme the config chose, once it is read
  await waitUntil("the light palette", () => LIGHT_ACCENT.test(term!.styledScreen()), 10_000, () => term!.styledScreen());
  const log = readFileSync(steps, "utf8");
  expect(log.indexOf("tui: first frame drawn")).toBeGreaterThan(0);
  expect(log.indexOf("tui: config read")).toBeGreaterThan(log.indexOf("tui: first frame drawn"));
  await leaveInput(term);
  term.type("q");
  // the warning again on the normal screen, once the terminal is back
  const after = await term.waitFor("[tui done]", 15_000, "screen");
  expect(after).toMatch(/unknown setting NO_SUCH_SETTING.*ignored/);
  expect(term.display("#{alternate_on} #{cursor_flag} #{mouse_any_flag}")).toBe("0 1 0");
  term.kill();

  // an invalid value: the TUI closes, the terminal is back, and the error is the one any command gives (exit 2)
  term = openTerminal(t4.home, [bun, flashchat], { ...t4.env, FLASHCHAT_TEMPERATURE: "hot" }, { cwd: t4.home, cols: 120, rows: 24 });
  const failed = await term.waitFor("[exited 2]", 60_000, "screen");
  expect(failed).toMatch(/invalid TEMPERATURE "hot" \(from environment variable FLASHCHAT_TEMPERATURE\)/);
  expect(term.display("#{alternate_on} #{cursor_flag} #{mouse_any_flag}")).toBe("0 1 0");
}, 120_000);
