// A chat killed with SIGKILL mid-reply (a real chat process, the real server, the stand-in engine): the session
// file holds what was shown, up to the last second, marked interrupted, and loads and shows as such.
import { expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "pathe";
import { listSessions, loadSession } from "../../lib/chat/sessions.ts";
import { loadFlashchatConfig } from "../../lib/config/index.ts";
import { makeTempHome, runCli } from "../helpers/cli.ts";

setDefaultTimeout(90_000);

test("SIGKILL mid-reply: the shown part of the reply is in the session file, loadable and marked [interrupted]", async () => {
  using home = makeTempHome("fc-chat-kill-");
  mkdirSync(join(home.dir, "server"), { recursive: true });
  const { paths } = await loadFlashchatConfig({ env: home.env, cwd: home.dir });
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "kill-fixture.ts"), home.dir], { env: home.env, cwd: home.dir, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  let out = "";
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stdout) out += dec.decode(chunk, { stream: true });
  })();
  const waitFor = async (what: string, pred: () => boolean) => {
    for (let i = 0; i < 3000 && !pred() && proc.exitCode === null; i++) await Bun.sleep(10);
    if (!pred()) throw new Error(`timed out waiting for ${what}; chat output:\n${out}\nstderr: ${await new Response(proc.stderr).text().catch(() => "")}`);
  };
  const banner = "Ctrl-D to leave\n";
  await waitFor("the chat banner", () => out.includes(banner));
  proc.stdin.write("tell me a long story\n");
  proc.stdin.flush();
  const reply = () => out.slice(out.indexOf(banner) + banner.length);
  await waitFor("the reply to stream", () => reply().length >= 80);
  const shown = reply();
  const saved = () => {
    const [s] = listSessions(paths);
    return s ? loadSession(paths, s.id).messages : [];
  };
  // while the reply is still streaming, what was shown reaches the file (within about a second)
  await waitFor("the shown text in the session file", () => saved().at(-1)?.content.startsWith(shown) ?? false);
  expect(proc.exitCode).toBeNull();
  proc.kill("SIGKILL");
  expect(await proc.exited).not.toBe(0);

  const [info] = listSessions(paths);
  const session = loadSession(paths, info!.id);
  expect(session.messages.map((m) => [m.role, m.interrupted ?? false])).toEqual([
    ["user", false],
    ["assistant", true],
  ]);
  expect(session.messages[1]!.content.startsWith(shown)).toBe(true);
  expect(session.messages[1]!.model).toBe("tiny");

  const show = await runCli(["sessions", "--show", info!.id], { env: home.env, cwd: home.dir });
  expect(show.code).toBe(0);
  expect(show.stdout).toStartWith("> tell me a long story\n\n");
  expect(show.stdout).toContain(shown);
  expect(show.stdout).toEndWith("[interrupted]\n");
});
