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
