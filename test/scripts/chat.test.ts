import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { xdgEnv } from "../helpers/cli.ts";
import { listSessions, loadSession } from "../../lib/chat/sessions.ts";
import { type Script, startStubServer } from "../chat/stub-server.ts";

// these tests spawn processes: give them room on a busy machine
setDefaultTimeout(30_000);

const script = join(import.meta.dir, "../../scripts/chat.ts");
const home = mkdtempSync(join(tmpdir(), "fc-chat-cli-"));
const scripts: Script[] = [];
const stub = startStubServer(() => scripts.shift() ?? { content: ["(nothing scripted)"] });
afterAll(() => {
  stub.server.stop(true);
  rmSync(home, { recursive: true, force: true });
});
const env = { ...xdgEnv(home), FLASHCHAT_SERVER_PORT: String(stub.server.port) };
const paths = { sessionsDir: join(home, "c/flashchat/sessions") };

async function run(args: string[], stdin: string) {
  const proc = Bun.spawn([process.execPath, script, ...args], { env, cwd: home, stdin: new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
  return { stdout, stderr, code };
}

test("piped input: one message per line, replies on stdout, the session saved; --show-thinking shows reasoning", async () => {
  scripts.push({ reasoning: ["mulling"], content: ["first reply"] }, { content: ["second reply"] });
  const r = await run(["--show-thinking"], "one\ntwo\n");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("mulling\n\nfirst reply\n");
  expect(r.stdout).toContain("second reply\n");
  expect(r.stdout).not.toContain("\x1b[");
  const [s] = listSessions(paths);
  expect(loadSession(paths, s!.id).messages.map((m) => m.content)).toEqual(["one", "first reply", "two", "second reply"]);
  expect(r.stdout).toContain(`resume with: flashchat chat --resume ${s!.id}`);
});

test("--resume: a bad id is a usage error (exit 2), an unknown one exit 1, both without a stack", async () => {
  const bad = await run(["--resume", "../etc/passwd"], "");
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("invalid session id");
  const missing = await run(["--resume", "chat-404"], "");
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('no session "chat-404"');
  for (const r of [bad, missing]) expect(r.stderr).not.toMatch(/\n\s+at /);
});

test("/set changes the session's sampling, checked like the settings; /set lists; --seed is sent; /retry sends a new seed", async () => {
  scripts.length = 0;
  const before = stub.requests.length;
  scripts.push({ content: ["one"] }, { content: ["two"] }, { content: ["three"] }, { content: ["four"] });
  const r = await run(
    ["--seed", "11"],
    ["hi", "/set temperature abc", "/set temprature 1", "/set temperature 0.2", "/set top_p 0.5", "/set max_tokens 7", "/set", "again", "/retry", "/set seed random", "/set temperature -", "more"].join("\n") + "\n",
  );
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('invalid temperature "abc": expected a number from 0 to 2');
  expect(r.stdout).toContain("unknown /set key temprature (did you mean temperature?)");
  expect(r.stdout).toMatch(/temperature\s+0\.2\s+\(\/set\)/);
  expect(r.stdout).toMatch(/seed\s+11\s+\(SEED setting\)/);
  const sent = stub.requests.slice(before);
  expect(sent).toHaveLength(4);
  expect(sent[0]).toMatchObject({ seed: 11 });
  expect(sent[0].temperature).toBeUndefined();
  expect(sent[1]).toMatchObject({ seed: 11, temperature: 0.2, top_p: 0.5, max_tokens: 7 });
  // /retry: the same conversation with a new seed
  expect(sent[2].messages).toEqual(sent[1].messages);
  expect(sent[2].seed).toBeNumber();
  expect(sent[2].seed).not.toBe(11);
  // seed back to random (the server picks it), temperature back to the server's default
  expect(sent[3].seed).toBeUndefined();
  expect(sent[3].temperature).toBeUndefined();
  expect(sent[3]).toMatchObject({ top_p: 0.5, max_tokens: 7 });
});

test("--resume takes the number `sessions` shows, an id, or a unique start of an id; ambiguous and missing ones are errors", async () => {
  scripts.length = 0;
  const dir = paths.sessionsDir;
  const { mkdirSync, writeFileSync } = await import("node:fs");
  mkdirSync(dir, { recursive: true });
  const mk = (id: string, created: string, text: string) =>
    writeFileSync(join(dir, `${id}.jsonl`), `${JSON.stringify({ type: "session", version: 1, id, created })}\n${JSON.stringify({ role: "user", content: text })}\n${JSON.stringify({ role: "assistant", content: `re: ${text}` })}\n`);
  mk("chat-2000000000001", "2033-05-18T03:33:20.001Z", "newest one");
  mk("chat-2000000000002", "2033-05-18T03:33:20.002Z", "newer still");
  mk("chat-1900000000000", "2030-03-17T17:46:40.000Z", "older");
  const list = listSessions(paths).map((s) => s.id);
  const at = (n: number) => list[n - 1]!;
  for (const [ref, id] of [["1", at(1)], [String(list.indexOf("chat-1900000000000") + 1), "chat-1900000000000"], ["chat-19", "chat-1900000000000"], ["chat-2000000000001", "chat-2000000000001"]] as const) {
    const r = await run(["--resume", ref], "");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`resumed ${id}`);
  }
  const ambiguous = await run(["--resume", "chat-20"], "");
  expect(ambiguous.code).toBe(2);
  expect(ambiguous.stderr).toContain('"chat-20" matches 2 sessions');
  const outOfRange = await run(["--resume", "99"], "");
  expect(outOfRange.code).toBe(2);
  expect(outOfRange.stderr).toContain("no session number 99");
  // no value and no terminal to pick on: a usage error, also when a flag follows
  for (const args of [["--resume"], ["--resume", "--seed", "3"]]) {
    const r = await run(args, "");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("chat --resume without a session needs a terminal to pick one");
  }
  for (const r of [ambiguous, outOfRange]) expect(r.stderr).not.toMatch(/\n\s+at /);
});
