// The chat loop against the real HTTP server (lib/server: template, tokenizer, SSE, queue, engine host),
// with the in-process stand-in engine so replies can be slowed down, cancelled and crashed at will.
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

// these tests spawn processes: give them room on a busy machine
setDefaultTimeout(30_000);

const root = mkdtempSync(join(tmpdir(), "fc-chat-server-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function setup(name: string, tokenDelayMs: number, maxTokens = 40) {
  const dir = join(root, name);
  const env = { HOME: dir, XDG_CONFIG_HOME: join(dir, "c"), XDG_DATA_HOME: join(dir, "d"), XDG_CACHE_HOME: join(dir, "x") };
  const config = { ...(await loadFlashchatConfig({ env, cwd: root })), maxTokens };
  const engines = createFakeEngineFactory({ tokenDelayMs });
  const server = await startTestServer(dir, { startEngine: engines.start, promptLogFile: join(dir, "prompts.log") });
  const input = new PassThrough();
  let out = "";
  const output = new Writable({
    write(chunk, _e, cb) {
      out += chunk.toString();
      cb();
    },
  });
  const app = new ChatApp(config, { server: { ensure: async () => ({ baseUrl: server.url, model: "tiny" }) }, input: input as any, output: output as any, env: {} });
  const waitFor = async (pred: () => boolean, what: string) => {
    for (let i = 0; i < 1000 && !pred(); i++) await Bun.sleep(10);
    if (!pred()) throw new Error(`timed out waiting for ${what}; output:\n${out}`);
  };
  const banner = "/help for commands · Ctrl-D to leave\n";
  /** Some reply text has arrived. */
  const replying = () => out.includes(banner) && out.length - out.indexOf(banner) - banner.length > 15;
  return { dir, config, server, engines, input, app, out: () => out, waitFor, replying };
}

test("two turns: the second prompt the model sees holds the first exchange; stats come from the server's usage", async () => {
  const t = await setup("turns", 1);
  const done = t.app.run();
  t.input.end("first question\nsecond question\n");
  await done;
  await t.server.stop(0);
  const [s] = listSessions(t.config.paths);
  const saved = loadSession(t.config.paths, s!.id).messages;
  expect(saved.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
  const firstReply = saved[1]!.content;
  expect(firstReply.length).toBeGreaterThan(0);
  expect(saved[1]!.stats?.completion_tokens).toBe(40);
  const prompts = readFileSync(join(t.dir, "prompts.log"), "utf8");
  const second = prompts.slice(prompts.lastIndexOf("second question") - 2000);
  expect(prompts.split("first question").length - 1).toBe(2); // in both prompts
  expect(second).toContain("first question");
  expect(second).toContain(firstReply.trim().slice(0, 20));
  expect(t.out()).toMatch(/40 tokens · [\d.]+ tok\/s · first token [\d.]+ s/);
});

test("Ctrl-C mid-reply cancels the generation on the server; the partial reply is kept; the next turn works", async () => {
  const t = await setup("cancel", 15, 1000);
  const done = t.app.run();
  t.input.write("go slowly\n");
  await t.waitFor(() => t.engines.engines[0]?.nGenerates === 1 && t.replying(), "the reply to start");
  process.emit("SIGINT");
  await t.waitFor(() => t.out().includes("[stopped"), "the stop note");
  t.input.end("again\n");
  await done;
  await t.server.stop(0);
  const [s] = listSessions(t.config.paths);
  const saved = loadSession(t.config.paths, s!.id).messages;
  expect(saved[1]!.interrupted).toBe(true);
  expect(readFileSync(join(t.dir, "logs", "server.log"), "utf8")).toContain("cancelled by the client");
  expect(saved.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
  expect(saved[3]!.interrupted).toBeUndefined();
  expect(t.engines.engines[0]!.nGenerates).toBe(2);
});

test("the engine dies mid-reply: a clear message, the session intact, and the restarted engine answers the next turn", async () => {
  const t = await setup("crash", 15, 1000);
  const done = t.app.run();
  t.input.write("crash please\n");
  await t.waitFor(() => (t.engines.engines[0]?.nGenerates ?? 0) === 1 && t.replying(), "the reply to start");
  t.engines.engines[0]!.crash();
  await t.waitFor(() => t.out().includes("your session is intact"), "the failure note");
  expect(t.out()).toContain("reply cut off: the server reported an error mid-reply");
  await t.waitFor(() => t.engines.engines.length === 2, "the engine restart");
  await t.waitFor(() => t.server.host.state === "ok", "the engine to be ready");
  t.input.end("are you back?\n");
  await done;
  await t.server.stop(0);
  const [s] = listSessions(t.config.paths);
  const saved = loadSession(t.config.paths, s!.id).messages;
  expect(saved.map((m) => [m.role, m.interrupted ?? false])).toEqual([
    ["user", false],
    ["assistant", true],
    ["user", false],
    ["assistant", false],
  ]);
});

test("the server goes away mid-reply: a clear message, nothing lost", async () => {
  const t = await setup("gone", 15, 1000);
  const done = t.app.run();
  t.input.write("hello\n");
  await t.waitFor(() => t.replying(), "the reply to start");
  t.server.server.stop(true); // drop every connection, as a killed server would
  await t.waitFor(() => t.out().includes("your session is intact"), "the failure note");
  expect(t.out()).toMatch(/reply cut off: (the connection to the server broke mid-reply|the server closed the connection)/);
  t.input.end();
  await done;
  await t.server.stop(0);
  const [s] = listSessions(t.config.paths);
  const saved = loadSession(t.config.paths, s!.id).messages;
  expect(saved.map((m) => [m.role, m.interrupted ?? false])).toEqual([
    ["user", false],
    ["assistant", true],
  ]);
});
