// `flashchat chat` end to end on the real engine with the demo model: chat sets the model up, starts the
// server in the background, streams a reply; `--resume` brings the session back; `serve --stop` cleans up.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { listSessions, loadSession } from "../../lib/chat/sessions.ts";
import { unusedPort } from "../helpers/cli.ts";
import { createTerminalHome, hasTmux, root, Tmux } from "./tmux.ts";

const port = unusedPort();
const t = createTerminalHome("fc-tmux-engine-", { FLASHCHAT_MODEL_REPO: "demo", FLASHCHAT_SERVER_PORT: port, FLASHCHAT_MAX_TOKENS: "12" });
const { home, env } = t;
const sessionsDir = t.sessionsDir;
let term: Tmux | undefined;

function stopServer() {
  return Bun.spawnSync([process.execPath, join(root, "scripts/flashchat.ts"), "serve", "--stop"], { env: { ...process.env, ...env }, cwd: home, stderr: "pipe" });
}

afterAll(() => {
  term?.kill();
  stopServer();
  t.remove();
});

test.skipIf(!hasTmux)("chat starts the server for the demo model, streams a reply with stats, and the session resumes", async () => {
  term = new Tmux(home, [process.execPath, join(root, "scripts/chat.ts"), "--yes", "--show-thinking"], env, { cwd: home });
  let screen = await term.waitFor("/help for commands", 120_000);
  expect(screen).toContain("the server is not running; starting it in the background (model demo)");
  term.type("Hello engine");
  term.send("Enter");
  screen = await term.waitFor(/12 tokens · [\d.]+ tok\/s · first token [\d.]+ s/, 60_000);
  // /retry asks again with a new seed: on the demo model (temperature 0.7) another reply
  term.type("/retry");
  term.send("Enter");
  await term.waitFor(/12 tokens · [\d.]+ tok\/s[^\n]*\n(.|\n)*12 tokens · [\d.]+ tok\/s/, 60_000);
  term.send("C-d");
  screen = await term.waitFor("[exited 0]", 10_000);
  expect(screen).toContain("the server keeps running in the background (flashchat serve --stop stops it)");
  term.kill();
  const [s] = listSessions({ sessionsDir });
  const saved = loadSession({ sessionsDir }, s!.id).messages;
  expect(saved.map((m) => m.role)).toEqual(["user", "assistant"]);
  expect(saved[1]!.model).toBe("demo");
  expect(saved[1]!.stats?.completion_tokens).toBe(12);
  const shown = (saved[1]!.reasoning ?? "") + saved[1]!.content;
  expect(shown.length).toBeGreaterThan(0);
  // the file keeps both replies (the first taken back by an undo line): they differ
  const replies = readFileSync(join(sessionsDir, `${s!.id}.jsonl`), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.role === "assistant");
  expect(replies).toHaveLength(2);
  expect((replies[0].reasoning ?? "") + replies[0].content).not.toBe((replies[1].reasoning ?? "") + replies[1].content);

  // the server is still running: a second chat resumes the session and sends the whole history
  term = new Tmux(home, [process.execPath, join(root, "scripts/chat.ts"), "--resume", s!.id], env, { cwd: home });
  screen = await term.waitFor("/help for commands", 30_000);
  expect(screen).toContain(`resumed ${s!.id} · 1 turn`);
  expect(screen).not.toContain("starting it in the background");
  term.type("And again");
  term.send("Enter");
  await term.waitFor(/tokens · [\d.]+ tok\/s/, 60_000);
  term.type("/quit");
  term.send("Enter");
  screen = await term.waitFor("[exited 0]", 10_000);
  expect(screen).not.toContain("keeps running in the background"); // this chat did not start it
  const after = loadSession({ sessionsDir }, s!.id).messages;
  expect(after.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
  expect(after[3]!.stats?.prompt_tokens).toBeGreaterThan(saved[1]!.stats!.prompt_tokens!); // the history went along

  const stop = stopServer();
  expect(stop.exitCode).toBe(0);
  expect(stop.stderr.toString()).toContain("stopped the server");
}, 240_000);
