import { afterEach, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import {
  Session,
  appendRecord,
  createSessionId,
  deleteSession,
  firstWords,
  listSessions,
  loadSession,
  parseSession,
  resolveRequestMessages,
  resolveSessionId,
} from "../../lib/chat/sessions.ts";
import { UserError } from "../../lib/errors.ts";

// these tests spawn processes: give them room on a busy machine
setDefaultTimeout(30_000);

let root: string;
let dirs: { sessionsDir: string; legacySessionsDir: string };

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "fc-sessions-"));
  dirs = { sessionsDir: join(root, "config/sessions"), legacySessionsDir: join(root, "home/.flashchat/sessions") };
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("ids", () => {
  test("new ids are chat-<unix ms>", () => {
    expect(createSessionId(1732400000123)).toBe("chat-1732400000123");
  });
  test("plain ids pass, a .jsonl suffix is dropped", () => {
    expect(resolveSessionId("chat-1234567890")).toBe("chat-1234567890");
    expect(resolveSessionId(" chat-1.jsonl ")).toBe("chat-1");
  });
  for (const bad of ["../x", "..", "a/b", "/etc/passwd", "a\\b", "", ".hidden", "x/../../y", "a..b", "a\0b", "-rf"]) {
    test(`rejects ${JSON.stringify(bad)}`, () => {
      expect(() => resolveSessionId(bad)).toThrow(UserError);
    });
  }
});

describe("write and read", () => {
  test("a new session writes a metadata line, then one line per message, and reads back", () => {
    const s = Session.create(dirs.sessionsDir, { model: "demo", now: 1732400000000 });
    expect(s.id).toBe("chat-1732400000000");
    s.append({ role: "user", content: "hello there" });
    s.append({ role: "assistant", content: "hi!\nline two", reasoning: "greet", stats: { completion_tokens: 3, tok_per_s: 4.5, ttft_ms: 12 } });
    const lines = readFileSync(s.path, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    expect(lines[0]).toEqual({ type: "session", version: 1, id: "chat-1732400000000", created: "2024-11-23T22:13:20.000Z", model: "demo" });
    expect(lines[1].role).toBe("user");
    expect(typeof lines[1].time).toBe("string");
    const loaded = loadSession(dirs, s.id);
    expect(loaded.warnings).toEqual([]);
    expect(loaded.meta?.model).toBe("demo");
    expect(loaded.messages.map((m) => [m.role, m.content])).toEqual([
      ["user", "hello there"],
      ["assistant", "hi!\nline two"],
    ]);
    expect(loaded.messages[1]!.stats).toEqual({ completion_tokens: 3, tok_per_s: 4.5, ttft_ms: 12 });
  });

  test("ids do not collide when two sessions start in the same millisecond", () => {
    const a = Session.create(dirs.sessionsDir, { now: 5_000_000_000_000 });
    const b = Session.create(dirs.sessionsDir, { now: 5_000_000_000_000 });
    expect(a.id).not.toBe(b.id);
  });

  test("resume continues the same file with the full history", () => {
    const s = Session.create(dirs.sessionsDir);
    s.append({ role: "user", content: "one" });
    s.append({ role: "assistant", content: "1" });
    const { session } = Session.open(dirs, s.id);
    expect(session.messages).toHaveLength(2);
    session.append({ role: "user", content: "two" });
    expect(loadSession(dirs, s.id).messages.map((m) => m.content)).toEqual(["one", "1", "two"]);
  });

  test("a half-written last line is skipped with a warning, and the next append starts a fresh line", () => {
    const s = Session.create(dirs.sessionsDir);
    s.append({ role: "user", content: "kept" });
    appendFileSync(s.path, '{"role":"assistant","content":"cut sh');
    const loaded = loadSession(dirs, s.id);
    expect(loaded.messages.map((m) => m.content)).toEqual(["kept"]);
    expect(loaded.warnings).toEqual([`${s.id}: skipped a half-written last line (3)`]);
    appendRecord(s.path, { role: "user", content: "after crash" });
    const again = loadSession(dirs, s.id);
    expect(again.messages.map((m) => m.content)).toEqual(["kept", "after crash"]);
    expect(again.warnings).toEqual([`${s.id}: skipped corrupt line 3`]);
  });

  test("corrupt lines and non-messages in the middle are skipped, never fatal", () => {
    const text = ['{"role":"user","content":"a"}', "garbage", '{"role":"robot","content":"x"}', "", '{"role":"assistant","content":"b"}', ""].join("\n");
    const r = parseSession(text, "t");
    expect(r.messages.map((m) => m.content)).toEqual(["a", "b"]);
    expect(r.warnings).toEqual(["t: skipped corrupt line 2", 't: skipped line 3 (not a {"role","content"} message)']);
  });

  test("several processes appending at once never tear a line", async () => {
    const s = Session.create(dirs.sessionsDir);
    const fixture = join(import.meta.dir, "append-fixture.ts");
    const procs = ["a", "b", "c", "d"].map((w) => Bun.spawn([process.execPath, fixture, s.path, w, "25"], { stderr: "inherit" }));
    expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0, 0, 0]);
    const loaded = loadSession(dirs, s.id);
    expect(loaded.warnings).toEqual([]);
    expect(loaded.messages).toHaveLength(100);
    for (const w of ["a", "b", "c", "d"]) {
      const mine = loaded.messages.filter((m) => m.content.startsWith(`${w}:`)).map((m) => Number(m.content.split(":")[1]));
      expect(mine).toEqual([...Array(25).keys()]); // each writer's lines, in its order
    }
  });
});

describe("list and delete", () => {
  const legacy = (id: string, lines: object[]) => {
    mkdirSync(dirs.legacySessionsDir, { recursive: true });
    writeFileSync(join(dirs.legacySessionsDir, `${id}.jsonl`), lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
  };

  test("lists both folders newest first, with turns and first words; bash-tool files resume", () => {
    legacy("chat-1700000000", [
      { role: "user", content: "What is the capital of France and why is it there?" },
      { role: "assistant", content: "Paris." },
      { role: "user", content: "thanks" },
    ]);
    const s = Session.create(dirs.sessionsDir, { now: 1732400000000 });
    s.append({ role: "user", content: "newer one" });
    const list = listSessions(dirs);
    expect(list.map((x) => [x.id, x.turns, x.messages, x.preview, x.legacy, x.created])).toEqual([
      ["chat-1732400000000", 1, 1, "newer one", false, "2024-11-23T22:13:20.000Z"],
      ["chat-1700000000", 2, 3, "What is the capital of France and why…", true, "2023-11-14T22:13:20.000Z"],
    ]);
    const { session } = Session.open(dirs, "chat-1700000000");
    expect(session.legacy).toBe(true);
    expect(resolveRequestMessages(session.messages)).toEqual([
      { role: "user", content: "What is the capital of France and why is it there?" },
      { role: "assistant", content: "Paris." },
      { role: "user", content: "thanks" },
    ]);
  });

  test("missing folders list as empty; other files are ignored", () => {
    expect(listSessions(dirs)).toEqual([]);
    mkdirSync(dirs.sessionsDir, { recursive: true });
    writeFileSync(join(dirs.sessionsDir, "notes.txt"), "x");
    writeFileSync(join(dirs.sessionsDir, ".x.jsonl"), "x");
    expect(listSessions(dirs)).toEqual([]);
  });

  test("delete removes only the named session", () => {
    const a = Session.create(dirs.sessionsDir, { now: 1 });
    const b = Session.create(dirs.sessionsDir, { now: 2 });
    expect(deleteSession(dirs, a.id).path).toBe(a.path);
    expect(existsSync(a.path)).toBe(false);
    expect(existsSync(b.path)).toBe(true);
    expect(() => deleteSession(dirs, a.id)).toThrow("no session");
  });

  test("delete refuses traversal and absolute paths and touches nothing outside", () => {
    mkdirSync(dirs.sessionsDir, { recursive: true });
    const outside = join(root, "config/precious.jsonl");
    writeFileSync(outside, "{}\n");
    for (const bad of ["../precious", "../precious.jsonl", outside, `${dirs.sessionsDir}/../precious`, "..\\precious"]) {
      expect(() => deleteSession(dirs, bad)).toThrow(UserError);
    }
    expect(existsSync(outside)).toBe(true);
  });

  test("a session folder that is a symlink still works; a session file symlink is not deleted through", () => {
    mkdirSync(join(root, "real"), { recursive: true });
    mkdirSync(join(root, "config"), { recursive: true });
    symlinkSync(join(root, "real"), dirs.sessionsDir);
    const s = Session.create(dirs.sessionsDir);
    expect(listSessions(dirs).map((x) => x.id)).toEqual([s.id]);
    const target = join(root, "target.jsonl");
    writeFileSync(target, '{"role":"user","content":"x"}\n');
    symlinkSync(target, join(dirs.sessionsDir, "chat-9.jsonl"));
    expect(() => deleteSession(dirs, "chat-9")).toThrow("not a regular file");
    expect(existsSync(target)).toBe(true);
  });
});

describe("request messages", () => {
  test("the last system prompt goes first; empty interrupted replies are dropped; reasoning is not sent", () => {
    expect(
      resolveRequestMessages([
        { role: "system", content: "old" },
        { role: "user", content: "a" },
        { role: "assistant", content: "A", reasoning: "hmm" },
        { role: "user", content: "b" },
        { role: "assistant", content: "", interrupted: true },
        { role: "system", content: "be brief" },
        { role: "user", content: "c" },
      ]),
    ).toEqual([
      { role: "system", content: "be brief" },
      { role: "user", content: "a" },
      { role: "assistant", content: "A" },
      { role: "user", content: "b" },
      { role: "user", content: "c" },
    ]);
  });
  test("firstWords cuts on words and characters", () => {
    expect(firstWords("  one\ntwo  three ")).toBe("one two three");
    expect(firstWords("a b c d e f g h i j")).toBe("a b c d e f g h…");
    expect(firstWords("x".repeat(100))).toHaveLength(60);
  });
});

test("processes starting sessions in the same millisecond get distinct ids", async () => {
  const fixture = join(import.meta.dir, "create-fixture.ts");
  const procs = [1, 2, 3, 4].map(() => Bun.spawn([process.execPath, fixture, dirs.sessionsDir, "1732400000000"], { stdout: "pipe" }));
  const ids = await Promise.all(procs.map((p) => p.stdout.text()));
  expect(new Set(ids.map((i) => i.trim())).size).toBe(4);
  for (const s of listSessions(dirs)) expect(loadSession(dirs, s.id).meta?.id).toBe(s.id);
});

describe("replies journalled as they stream (partial records)", () => {
  test("partial records then the complete reply: one message, the complete one", () => {
    const s = Session.create(dirs.sessionsDir);
    s.append({ role: "user", content: "q" });
    const j = s.startReply({ model: "m" });
    j.add("reasoning", "hm");
    j.add("content", "Hel");
    j.flush();
    j.add("content", "lo");
    j.flush();
    j.finish({ role: "assistant", content: "Hello", reasoning: "hm", model: "m" });
    const text = readFileSync(s.path, "utf8");
    expect(text.split("\n").filter((l) => l.includes('"type":"partial"')).length).toBe(2);
    const loaded = loadSession(dirs, s.id);
    expect(loaded.warnings).toEqual([]);
    expect(loaded.messages.map((m) => [m.role, m.content, m.reasoning ?? null, m.interrupted ?? false])).toEqual([
      ["user", "q", null, false],
      ["assistant", "Hello", "hm", false],
    ]);
  });

  test("partial records with no complete reply (the chat was killed): one interrupted message, sent back as context", () => {
    const s = Session.create(dirs.sessionsDir);
    s.append({ role: "user", content: "q" });
    const j = s.startReply({ model: "m" });
    j.add("content", "Half ");
    j.flush();
    j.add("content", "a reply");
    j.flush();
    appendFileSync(s.path, '{"type":"partial","reply":"' + j.id + '","content":" and a torn li'); // killed mid-write
    const loaded = loadSession(dirs, s.id);
    expect(loaded.warnings).toEqual([`${s.id}: skipped a half-written last line (5)`]);
    expect(loaded.messages).toMatchObject([
      { role: "user", content: "q" },
      { role: "assistant", content: "Half a reply", model: "m", interrupted: true },
    ]);
    // resumed and continued: the next message follows it, and the interrupted reply is part of the conversation
    const { session } = Session.open(dirs, s.id);
    session.append({ role: "user", content: "go on" });
    expect(resolveRequestMessages(loadSession(dirs, s.id).messages)).toEqual([
      { role: "user", content: "q" },
      { role: "assistant", content: "Half a reply" },
      { role: "user", content: "go on" },
    ]);
  });

  test("the journal writes on its own at most flushMs after text arrives, and nothing when nothing arrived", async () => {
    const s = Session.create(dirs.sessionsDir);
    const j = s.startReply({ flushMs: 20 });
    const before = readFileSync(s.path, "utf8");
    j.add("content", "");
    j.flush();
    expect(readFileSync(s.path, "utf8")).toBe(before);
    j.add("content", "x");
    for (let i = 0; i < 500 && !readFileSync(s.path, "utf8").includes('"content":"x"'); i++) await Bun.sleep(5);
    expect(readFileSync(s.path, "utf8").slice(before.length)).toMatch(/^\{"type":"partial","reply":"r\w+","content":"x","time":"[^"]+"\}\n$/);
  });

  test("old files (the bash tool's, no partial records) read as before", () => {
    mkdirSync(dirs.legacySessionsDir, { recursive: true });
    writeFileSync(join(dirs.legacySessionsDir, "chat-1700000000.jsonl"), '{"role":"user","content":"hi"}\n{"role":"assistant","content":"hello"}\n');
    expect(loadSession(dirs, "chat-1700000000").messages).toEqual([
      { role: "user", content: "hi" },
      { role: "assistant", content: "hello" },
    ]);
  });
});
