import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { Session } from "../../lib/chat/sessions.ts";
import { pickSession, renderSessionChoices } from "../../lib/chat/session-list.ts";

// these tests spawn processes: give them room on a busy machine
setDefaultTimeout(30_000);

const script = join(import.meta.dir, "../../scripts/sessions.ts");
let home: string;
let env: Record<string, string>;
let sessionsDir: string;
let legacyDir: string;

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), "fc-sessions-cli-"));
  env = {
    ...(process.env as Record<string, string>),
    HOME: home,
    XDG_CONFIG_HOME: join(home, "xdg-config"),
    XDG_DATA_HOME: join(home, "xdg-data"),
    XDG_CACHE_HOME: join(home, "xdg-cache"),
    TZ: "UTC",
    NO_COLOR: "1",
  };
  sessionsDir = join(home, "xdg-config/flashchat/sessions");
  legacyDir = join(home, ".flashchat/sessions");
  const s = Session.create(sessionsDir, { now: 1732400000000 });
  s.append({ role: "user", content: "Explain mixture of experts models in simple words please" });
  s.append({ role: "assistant", content: "Sure." });
  mkdirSync(legacyDir, { recursive: true });
  writeFileSync(join(legacyDir, "chat-1700000000.jsonl"), '{"role":"user","content":"old bash chat"}\n{"role":"assistant","content":"yes"}\n');
});
afterAll(() => rmSync(home, { recursive: true, force: true }));

async function run(...args: string[]) {
  const proc = Bun.spawn([process.execPath, script, ...args], { env, cwd: home, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
  return { stdout, stderr, code };
}

test("lists both folders as a table on stdout", async () => {
  const r = await run();
  expect(r.code).toBe(0);
  expect(r.stdout).toBe(
    [
      "ID                  CREATED           TURNS  FIRST WORDS",
      "chat-1732400000000  2024-11-23 22:13      1  Explain mixture of experts models in simple words…",
      "chat-1700000000     2023-11-14 22:13      1  old bash chat  (bash tool)",
      "",
    ].join("\n"),
  );
});

test("--json gives every field", async () => {
  const r = await run("--json");
  expect(r.code).toBe(0);
  const list = JSON.parse(r.stdout);
  expect(list[0]).toEqual({
    id: "chat-1732400000000",
    path: join(sessionsDir, "chat-1732400000000.jsonl"),
    created: "2024-11-23T22:13:20.000Z",
    turns: 1,
    messages: 2,
    preview: "Explain mixture of experts models in simple words…",
    legacy: false,
  });
  expect(list[1].legacy).toBe(true);
});

test("--delete refuses traversal with exit 2 and no stack, and deletes nothing", async () => {
  writeFileSync(join(home, "xdg-config/flashchat/keep.jsonl"), "{}\n");
  for (const bad of ["../keep", join(home, "xdg-config/flashchat/keep.jsonl"), "a/b"]) {
    const r = await run("--delete", bad);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("invalid session id");
    expect(r.stderr).not.toContain(" at ");
  }
  expect(existsSync(join(home, "xdg-config/flashchat/keep.jsonl"))).toBe(true);
});

test("--delete of an unknown id fails with exit 1; a known one is removed", async () => {
  const missing = await run("--delete", "chat-1");
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('no session "chat-1"');
  const s = Session.create(sessionsDir, { now: 1800000000000 });
  const r = await run("--delete", s.id);
  expect(r.code).toBe(0);
  expect(existsSync(s.path)).toBe(false);
});

test("--show prints the conversation, a reply cut short marked [interrupted]; --json gives the messages", async () => {
  const s = Session.create(sessionsDir, { now: 1800000000500 });
  s.append({ role: "user", content: "first" });
  s.append({ role: "assistant", content: "an answer" });
  s.append({ role: "user", content: "second" });
  s.append({ role: "assistant", content: "cut", interrupted: true });
  const r = await run("--show", s.id);
  expect(r.code).toBe(0);
  expect(r.stdout).toBe("> first\n\nan answer\n\n> second\n\ncut\n[interrupted]\n");
  const j = await run("--show", s.id, "--json");
  expect(JSON.parse(j.stdout).messages.map((m: { content: string }) => m.content)).toEqual(["first", "an answer", "second", "cut"]);
  expect((await run("--show", "chat-404")).code).toBe(1);
});

test("numbered choices and picking by number or id", () => {
  const list = [
    { id: "chat-2", path: "", created: "", turns: 5, messages: 10, preview: "first words…", legacy: false },
    { id: "chat-1", path: "", created: "", turns: 1, messages: 1, preview: "x".repeat(100), legacy: true },
  ];
  const lines = renderSessionChoices(list, 40);
  expect(lines[0]).toBe("[1] chat-2 (5 turns) first words…");
  expect(lines[1]).toHaveLength(40);
  expect(lines[1]!.startsWith("[2] chat-1 (1 turn) xxx")).toBe(true);
  expect(pickSession(list, "2")).toBe("chat-1");
  expect(pickSession(list, " chat-2 ")).toBe("chat-2");
  expect(pickSession(list, "3")).toBeUndefined();
  expect(pickSession(list, "nope")).toBeUndefined();
});
