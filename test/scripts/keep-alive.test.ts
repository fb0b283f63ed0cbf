// KEEP_ALIVE through the real CLI and engine: an idle background server unloads the model (status says so, the
// engine process is gone), the next request loads it again and is answered; a server chat or prompt starts gets
// the documented default.
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "pathe";
import { readPidFile } from "../../lib/process/pid-file.ts";
import { isProcessAlive, loadCommandLine } from "../../lib/process/process-info.ts";
import { makeTempHome, runCli, unusedPort } from "../helpers/cli.ts";

setDefaultTimeout(240_000);

const t = makeTempHome("fc-keep-alive-");
const env: Record<string, string> = { ...t.env, FLASHCHAT_SERVER_PORT: unusedPort() };
const cli = (args: string[], extra: Record<string, string> = {}) => runCli(args, { env: { ...env, ...extra }, cwd: t.dir });
const status = async () => JSON.parse((await cli(["status", "--json"])).stdout);
afterAll(async () => {
  await cli(["serve", "--stop"]);
  t[Symbol.dispose]();
});

async function waitFor<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await Bun.sleep(200);
  }
}

test("--keep-alive: idle, the engine is unloaded; the next prompt loads it again and gets its reply", async () => {
  const up = await cli(["serve", "--model", "demo", "--yes", "--keep-alive", "1"]);
  expect({ code: up.code, err: up.code ? up.stderr : "" }).toEqual({ code: 0, err: "" });
  const logFile = join(env.XDG_CONFIG_HOME!, "flashchat", "logs", "server.log");
  const enginePid = Number(/engine ready: pid (\d+)/.exec(readFileSync(logFile, "utf8"))![1]);
  const idle = await waitFor("the model to be unloaded", status, (s) => s.loaded?.status === "unloaded");
  expect(idle.loaded).toMatchObject({ model: "demo", enginePid: null, context: null });
  await waitFor("the engine to exit", async () => isProcessAlive(enginePid), (alive) => !alive);
  expect(idle.server.healthy).toBe(true); // still ready: the next request loads it

  const r = await cli(["prompt", "--model", "demo", "--tokens", "3", "--json", "hi"]);
  expect({ code: r.code, err: r.code ? r.stderr : "" }).toEqual({ code: 0, err: "" });
  expect(JSON.parse(r.stdout)).toMatchObject({ model: "demo", via: "server", usage: { completion_tokens: 3 } });
  const log = readFileSync(logFile, "utf8");
  expect(log).toContain("(KEEP_ALIVE=1): unloading it");
  expect(log).toContain("a request for the unloaded model: loading the engine again");
  expect((await cli(["serve", "--stop"])).code).toBe(0);
});

test("a server prompt or chat starts unloads after KEEP_ALIVE (default 300 s); `serve` never unless asked", async () => {
  const pidFile = join(env.XDG_CONFIG_HOME!, "flashchat", "server.pid");
  const r = await cli(["chat", "--model", "demo"], {});
  // chat without input: nothing sent, but the server it started stays, with the default keep-alive
  expect(r.code).toBe(0);
  const pid = readPidFile(pidFile)!.pid;
  const argv = loadCommandLine(pid)!;
  expect(argv.slice(argv.indexOf("--keep-alive"), argv.indexOf("--keep-alive") + 2)).toEqual(["--keep-alive", "300"]);
  expect((await cli(["serve", "--stop"])).code).toBe(0);
  const set = await cli(["prompt", "--model", "demo", "--tokens", "1", "hi"], { FLASHCHAT_KEEP_ALIVE: "42" });
  expect(set.code).toBe(0); // prompt alone runs a private server: nothing left running
  expect(readPidFile(pidFile)).toBeUndefined();
  expect((await cli(["serve", "--model", "demo"])).code).toBe(0);
  const served = loadCommandLine(readPidFile(pidFile)!.pid)!;
  expect(served).not.toContain("--keep-alive");
});
