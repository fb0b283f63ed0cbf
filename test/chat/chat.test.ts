import { afterAll, beforeEach, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { PassThrough, Writable } from "node:stream";
import { join } from "pathe";
import { ChatApp, renderStats, resolveStats } from "../../lib/chat/chat.ts";
import { Session, listSessions, loadSession } from "../../lib/chat/sessions.ts";
import { loadFlashchatConfig } from "../../lib/config/index.ts";
import { type Script, startStubServer } from "./stub-server.ts";

const home = mkdtempSync(join(tmpdir(), "fc-chat-"));
const env = { HOME: home, XDG_CONFIG_HOME: join(home, "c"), XDG_DATA_HOME: join(home, "d"), XDG_CACHE_HOME: join(home, "x") };
const config = await loadFlashchatConfig({ env, cwd: home });
let scripts: Script[] = [];
const stub = startStubServer(() => scripts.shift() ?? { content: ["(no script)"] });
afterAll(() => {
  stub.server.stop(true);
  rmSync(home, { recursive: true, force: true });
});
beforeEach(() => {
  stub.requests.length = 0;
});

const link = { ensure: async () => ({ baseUrl: stub.baseUrl, model: "stub-model" }) };

function start(opts: { resume?: string; onOutput?: (all: string) => void } = {}) {
  const input = new PassThrough();
  let out = "";
  const output = new Writable({
    write(chunk, _enc, cb) {
      out += chunk.toString();
      opts.onOutput?.(out);
      cb();
    },
  });
  const app = new ChatApp(config, { server: link, resume: opts.resume, input: input as any, output: output as any, env: {} });
  const done = app.run();
  return { input, done, output: () => out };
}

test("each request carries the whole conversation; both sides are saved as they happen", async () => {
  scripts = [{ content: ["Hi ", "there."] }, { reasoning: ["think"], content: ["Second."] }];
  const c = start();
  c.input.end("hello\nand again\n");
  await c.done;
  expect(stub.requests.map((r) => r.messages)).toEqual([
    [{ role: "user", content: "hello" }],
    [
      { role: "user", content: "hello" },
      { role: "assistant", content: "Hi there." },
      { role: "user", content: "and again" },
    ],
  ]);
  expect(stub.requests[0].model).toBe("stub-model");
  const [s] = listSessions(config.paths);
  const saved = loadSession(config.paths, s!.id).messages;
  expect(saved.map((m) => [m.role, m.content, m.reasoning ?? null, m.interrupted ?? false])).toEqual([
    ["user", "hello", null, false],
    ["assistant", "Hi there.", null, false],
    ["user", "and again", null, false],
    ["assistant", "Second.", "think", false],
  ]);
  expect(saved[1]!.stats?.completion_tokens).toBe(2);
  expect(c.output()).toContain("Hi there.\n2 tokens");
  expect(c.output()).not.toContain("think\n"); // thinking hidden by default
  expect(c.output()).toContain(`resume with: flashchat chat --resume ${s!.id}`);
});

test("slash commands: /think on shows reasoning, /system is sent first, /new starts another session, /quit", async () => {
  scripts = [{ reasoning: ["pondering"], content: ["ok"] }, { content: ["fresh"] }];
  const before = listSessions(config.paths).length;
  const c = start();
  c.input.end("/think on\n/system be terse\nq1\n/new\nq2\n/bogus\n/quit\nnever sent\n");
  await c.done;
  expect(stub.requests.map((r) => r.messages)).toEqual([
    [
      { role: "system", content: "be terse" },
      { role: "user", content: "q1" },
    ],
    [{ role: "user", content: "q2" }],
  ]);
  expect(c.output()).toContain("thinking is shown");
  expect(c.output()).toContain("pondering\n\nok");
  expect(c.output()).toContain("unknown command /bogus");
  expect(listSessions(config.paths).length).toBe(before + 2);
});

test("--resume shows the last messages and continues with the full history", async () => {
  const s = Session.create(config.paths.sessionsDir);
  s.append({ role: "user", content: "earlier question" });
  s.append({ role: "assistant", content: "earlier **answer**" });
  scripts = [{ content: ["continued"] }];
  const c = start({ resume: s.id });
  c.input.end("next\n");
  await c.done;
  expect(c.output()).toContain(`resumed ${s.id} · 1 turn`);
  expect(c.output()).not.toContain("1 turns");
  expect(c.output()).toContain("> earlier question\nearlier **answer**\n");
  expect(stub.requests[0].messages).toEqual([
    { role: "user", content: "earlier question" },
    { role: "assistant", content: "earlier **answer**" },
    { role: "user", content: "next" },
  ]);
  expect(loadSession(config.paths, s.id).messages.map((m) => m.content)).toEqual(["earlier question", "earlier **answer**", "next", "continued"]);
});

test("/resume N picks from the numbered list", async () => {
  const s = Session.create(config.paths.sessionsDir, { now: Date.now() + 10_000_000 }); // newest: [1]
  s.append({ role: "user", content: "pick me" });
  scripts = [{ content: ["yes"] }];
  const c = start();
  c.input.end("/sessions\n/resume 1\nmore\n");
  await c.done;
  expect(c.output()).toContain(`[1] ${s.id} (1 turn) pick me`);
  expect(stub.requests[0].messages).toEqual([
    { role: "user", content: "pick me" },
    { role: "user", content: "more" },
  ]);
});

test("a server that goes away mid-reply: clear message, partial reply kept as interrupted, next message works", async () => {
  scripts = [{ content: ["part", "ial", "never"], dieAfter: 2 }, { content: ["back"] }];
  const c = start();
  c.input.end("first\nsecond\n");
  await c.done;
  expect(c.output()).toContain("reply cut off: the server closed the connection before the reply was complete");
  expect(c.output()).toContain("your session is intact");
  const [s] = listSessions(config.paths).filter((x) => x.preview === "first");
  const saved = loadSession(config.paths, s!.id).messages;
  expect(saved.map((m) => [m.content, m.interrupted ?? false])).toEqual([
    ["first", false],
    ["partial", true],
    ["second", false],
    ["back", false],
  ]);
  // the interrupted partial reply is still part of the conversation sent next
  expect(stub.requests[1].messages.map((m: { content: string }) => m.content)).toEqual(["first", "partial", "second"]);
});

test("Ctrl-C (SIGINT) stops the reply, keeps the session, and the chat goes on", async () => {
  scripts = [{ content: Array.from({ length: 200 }, (_, i) => `w${i} `), delayMs: 5 }, { content: ["after"] }];
  let sent = false;
  const c = start({
    onOutput: (all) => {
      if (!sent && all.includes("w3 ")) {
        sent = true;
        process.emit("SIGINT");
      }
    },
  });
  c.input.write("long one\n");
  await Bun.sleep(10);
  const waitFor = async (s: string) => {
    for (let i = 0; i < 500 && !c.output().includes(s); i++) await Bun.sleep(10);
  };
  await waitFor("[stopped");
  c.input.end("next\n");
  await c.done;
  const [s] = listSessions(config.paths).filter((x) => x.preview === "long one");
  const saved = loadSession(config.paths, s!.id).messages;
  expect(saved[1]!.interrupted).toBe(true);
  expect(saved[1]!.content.startsWith("w0 w1 w2 w3 ")).toBe(true);
  expect(saved[1]!.content.length).toBeLessThan(200 * 4);
  expect(saved.map((m) => m.content).slice(2)).toEqual(["next", "after"]);
});

test("stats: tokens, tok/s from the first token on, time to first token", () => {
  const s = resolveStats({ startMs: 0, firstMs: 500, endMs: 2500, nChunks: 7, usage: { completion_tokens: 21, prompt_tokens: 9 } });
  expect(s).toEqual({ completion_tokens: 21, prompt_tokens: 9, total_ms: 2500, ttft_ms: 500, tok_per_s: 10 });
  expect(renderStats(s)).toBe("21 tokens · 10.0 tok/s · first token 0.50 s");
});

test("a reply that is only (hidden) thinking says so instead of showing nothing", async () => {
  scripts = [{ reasoning: ["deep thoughts"], content: [] }];
  const c = start();
  c.input.end("hmm\n");
  await c.done;
  expect(c.output()).toContain("(only thinking so far; /think on shows it)");
  expect(c.output()).not.toContain("deep thoughts");
});

test("resuming a session whose last line was half-written warns and carries on", async () => {
  const s = Session.create(config.paths.sessionsDir, { now: 1 });
  s.append({ role: "user", content: "before the crash" });
  appendFileSync(s.path, '{"role":"assistant","content":"tor');
  scripts = [{ content: ["fine"] }];
  const c = start({ resume: s.id });
  c.input.end("after\n");
  await c.done;
  expect(c.output()).toContain(`warning: ${s.id}: skipped a half-written last line (3)`);
  expect(stub.requests[0].messages).toEqual([
    { role: "user", content: "before the crash" },
    { role: "user", content: "after" },
  ]);
  expect(loadSession(config.paths, s.id).messages.map((m) => m.content)).toEqual(["before the crash", "after", "fine"]);
});

test("--resume after a chat was killed mid-reply: the recovered reply shows [interrupted] and is sent as context", async () => {
  const s = Session.create(config.paths.sessionsDir, { now: 2 });
  s.append({ role: "user", content: "tell me" });
  const j = s.startReply({ model: "stub-model" });
  j.add("content", "Once upon");
  j.flush(); // the process died here: no complete reply line
  scripts = [{ content: ["the end"] }];
  const c = start({ resume: s.id });
  c.input.end("continue\n");
  await c.done;
  expect(c.output()).toContain("> tell me\nOnce upon\n[interrupted]\n");
  expect(stub.requests[0].messages).toEqual([
    { role: "user", content: "tell me" },
    { role: "assistant", content: "Once upon" },
    { role: "user", content: "continue" },
  ]);
  expect(loadSession(config.paths, s.id).messages.map((m) => [m.content, m.interrupted ?? false])).toEqual([
    ["tell me", false],
    ["Once upon", true],
    ["continue", false],
    ["the end", false],
  ]);
});
