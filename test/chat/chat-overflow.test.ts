// Chat and the context: a message too long for it is refused before it is stored (the chat goes on, and so does a
// resume), /undo takes back the last exchange, /retry asks for the last reply again, and chat warns near the limit.
// Against the real HTTP server with the in-process stand-in engine (its context set per test).
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { PassThrough, Writable } from "node:stream";
import { join } from "pathe";
import { ChatApp } from "../../lib/chat/chat.ts";
import { listSessions, loadSession } from "../../lib/chat/sessions.ts";
import { loadFlashchatConfig } from "../../lib/config/index.ts";
import { createFakeEngineFactory } from "../server/_fake-engine.ts";
import { startTestServer } from "../server/_server-fixture.ts";

setDefaultTimeout(30_000);

const root = mkdtempSync(join(tmpdir(), "fc-chat-overflow-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function chat(name: string, context: number, lines: string[], opts: { resume?: string } = {}) {
  const dir = join(root, name);
  const env = { HOME: dir, XDG_CONFIG_HOME: join(dir, "c"), XDG_DATA_HOME: join(dir, "d"), XDG_CACHE_HOME: join(dir, "x") };
  const config = { ...(await loadFlashchatConfig({ env, cwd: root })), maxTokens: 20 };
  const engines = createFakeEngineFactory({ tokenDelayMs: 1, context });
  const server = await startTestServer(dir, { startEngine: engines.start, promptLogFile: join(dir, "prompts.log") });
  const input = new PassThrough();
  let out = "";
  const output = new Writable({
    write(chunk, _e, cb) {
      out += chunk.toString();
      cb();
    },
  });
  const app = new ChatApp(config, { server: { ensure: async () => ({ baseUrl: server.url, model: "tiny" }) }, input: input as any, output: output as any, env: {}, resume: opts.resume });
  const done = app.run();
  input.end(lines.map((l) => `${l}\n`).join(""));
  await done;
  await server.stop(0);
  return { config, out, engines, dir };
}

test("a message longer than the context is refused before it is stored; the next message and a resume still work", async () => {
  const long = "word ".repeat(600);
  const t = await chat("overflow", 400, ["hi", long, "after"]);
  expect(t.out).toMatch(/the prompt is \d+ tokens; this model's context allows 400/);
  expect(t.out).toContain("this message was not saved");
  const [s] = listSessions(t.config.paths);
  const saved = loadSession(t.config.paths, s!.id).messages;
  expect(saved.map((m) => [m.role, m.role === "user" ? m.content : ""])).toEqual([
    ["user", "hi"],
    ["assistant", ""],
    ["user", "after"],
    ["assistant", ""],
  ]);
  expect(t.engines.engines[0]!.nGenerates).toBe(2);
  // the session resumes and goes on (the refused message is not in it)
  const again = await chat("overflow", 400, ["once more"], { resume: s!.id });
  expect(again.out).not.toContain("refused");
  expect(loadSession(t.config.paths, s!.id).messages.filter((m) => m.role === "user").map((m) => m.content)).toEqual(["hi", "after", "once more"]);
});

test("/retry asks for the last reply again; /undo takes back the last exchange (undo lines in the file, applied on load)", async () => {
  const t = await chat("undo", 4096, ["one", "/retry", "/undo", "two", "/undo", "/undo", "three"]);
  expect(t.engines.engines[0]!.nGenerates).toBe(4); // one, its retry, two, three
  expect(t.out).toContain("took back the last exchange (2 messages)");
  expect(t.out).toContain("nothing to take back");
  const [s] = listSessions(t.config.paths);
  const loaded = loadSession(t.config.paths, s!.id);
  expect(loaded.warnings).toEqual([]);
  expect(loaded.messages.map((m) => [m.role, m.role === "user" ? m.content : ""])).toEqual([
    ["user", "three"],
    ["assistant", ""],
  ]);
  const file = readFileSync(loaded.path, "utf8");
  expect(file.split("\n").filter((l) => l.includes('"type":"undo"')).map((l) => JSON.parse(l).scope)).toEqual(["reply", "exchange", "exchange"]);
  // the retry resent the same conversation; "three" went alone (nothing undone was sent)
  const prompts = readFileSync(join(t.dir, "prompts.log"), "utf8");
  const last = prompts.slice(prompts.lastIndexOf("\n--- "));
  expect(last).toContain("three");
  expect(last).not.toContain("two");
  expect(last).not.toContain("one");
  expect(prompts.split("one").length - 1).toBeGreaterThanOrEqual(2);
});

test("chat warns when the conversation nears the context, before a turn fails", async () => {
  const roomy = await chat("roomy", 4096, ["hello"]);
  expect(roomy.out).not.toContain("-token context");
  const tight = await chat("tight", 64, ["hello", "and again"]);
  expect(tight.out).toMatch(/the conversation fills \d+ of the 64-token context \(\d+%\): soon a message will not fit/);
});
