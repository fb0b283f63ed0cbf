// The model a running server has loaded, through the real CLI: asking for another one fails (no terminal)
// naming both and the commands to run, or asks to restart it (a terminal, tmux); a missing model folder is the
// first error; with no MODEL_REPO configured the model set up here is used; `status` shows what is loaded.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "pathe";
import { readPidFile } from "../../lib/process/pid-file.ts";
import { makeTempHome, repoRoot, runCli, unusedPort } from "../helpers/cli.ts";
import { writeFixtureCheckpoint } from "../server/_real-model.ts";
import { hasTmux, Tmux } from "../tmux/tmux.ts";

// the real engine, background servers and model setup, on a machine shared with other work
setDefaultTimeout(240_000);

const t = makeTempHome("fc-loaded-model-");
const port = unusedPort();
const env: Record<string, string> = { ...t.env, FLASHCHAT_SERVER_PORT: port, TERM: "xterm-256color" };
const other = join(t.dir, "tiny-local"); // a second model: the test fixture as a local checkpoint folder
const pidFile = join(env.XDG_CONFIG_HOME!, "flashchat", "server.pid");
const cli = (args: string[], opts: { stdin?: string; extra?: Record<string, string> } = {}) => runCli(args, { env: { ...env, ...opts.extra }, cwd: t.dir, stdin: opts.stdin });
const ok = (r: { code: number; stderr: string }) => expect({ code: r.code, stderr: r.code ? r.stderr : "" }).toEqual({ code: 0, stderr: "" });

beforeAll(async () => {
  ok(await cli(["setup", "--model", "demo", "--yes"]));
  writeFixtureCheckpoint(other);
  ok(await cli(["setup", "--model", other, "--yes"]));
}, 240_000);

afterAll(async () => {
  await cli(["serve", "--stop"]);
  t[Symbol.dispose]();
});

describe("no server running", () => {
  test("a model folder that does not exist is the first error, even before reading the prompt", async () => {
    const r = await cli(["prompt", "--model", join(t.dir, "nonexistent")], { stdin: "hi" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`model folder not found: ${join(t.dir, "nonexistent")}`);
    expect(r.stdout).toBe("");
    for (const cmd of ["chat", "serve"]) {
      const c = await cli([cmd, "--model", "/nonexistent-model-folder"], { stdin: "hi\n" });
      expect({ cmd, code: c.code, err: c.stderr.includes("model folder not found: /nonexistent-model-folder") }).toEqual({ cmd, code: 1, err: true });
    }
  });

  test("no MODEL_REPO configured: the model set up here, a user's own before the demo, and prompt says which", async () => {
    const r = await cli(["prompt", "--tokens", "2", "--json", "hi"]);
    ok(r);
    expect(r.stderr).toContain(`no MODEL_REPO configured: using ${other}, the first of the models set up here (also: demo)`);
    expect(JSON.parse(r.stdout)).toMatchObject({ model: other, via: "local" });
    const s = JSON.parse((await cli(["status", "--json"])).stdout);
    expect(s.model).toMatchObject({ id: other, kind: "local", chosenBy: `the model set up here (${other})` });
    // a configured MODEL_REPO is never replaced
    const set = JSON.parse((await cli(["status", "--json"], { extra: { FLASHCHAT_MODEL_REPO: "qwen3.6-35b" } })).stdout);
    expect(set.model).toMatchObject({ id: "qwen3.6-35b", chosenBy: "FLASHCHAT_MODEL_REPO" });
  });
});

describe("a server running with demo", () => {
  beforeAll(async () => {
    ok(await cli(["serve", "--model", "demo"]));
  }, 240_000);

  test("status (and --json) shows what it has loaded: model, context, pid, port, uptime, memory", async () => {
    const r = await cli(["status", "--json"]);
    ok(r);
    const s = JSON.parse(r.stdout);
    const pid = readPidFile(pidFile)!.pid;
    expect(s.loaded).toMatchObject({ model: "demo", pid, port: Number(port), status: "ok" });
    expect(s.loaded.artifactsDir).toBe(join(env.XDG_DATA_HOME!, "flashchat", "models", "demo"));
    expect(s.loaded.context).toBeGreaterThan(0);
    expect(s.loaded.enginePid).toBeGreaterThan(0);
    expect(s.loaded.uptimeS).toBeGreaterThanOrEqual(0);
    // server + engine resident memory: more than the server's bun alone would be (it holds the demo's weights too)
    expect(s.loaded.memoryBytes).toBeGreaterThan(20e6);
    const human = await cli(["status"]);
    expect(human.stdout).toMatch(/MODEL\s+CONTEXT\s+PID\s+PORT\s+UPTIME\s+MEMORY/);
    expect(human.stdout).toMatch(new RegExp(`demo\\s+${s.loaded.context}\\s+${pid} \\(engine ${s.loaded.enginePid}\\)\\s+${port}\\s+\\S+\\s+\\d+(\\.\\d)? MB`));
  });

  test("another model without a terminal: an error naming both and the commands to run, for prompt, chat and serve", async () => {
    for (const model of ["qwen3.6-35b", other]) {
      const r = await cli(["prompt", "--model", model, "--json", "--tokens", "2", "hi"]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(`has demo loaded, not ${model}`);
      expect(r.stderr).toContain(`flashchat serve --stop && flashchat prompt --model ${model}`);
      expect(r.stderr).not.toContain(" at ");
    }
    const env2 = await cli(["prompt", "--json", "--tokens", "2", "hi"], { extra: { FLASHCHAT_MODEL_REPO: "qwen3.6-35b" } });
    expect(env2.code).toBe(1);
    expect(env2.stderr).toContain("has demo loaded, not qwen3.6-35b");
    const chat = await cli(["chat", "--model", "qwen3.6-35b"], { stdin: "hi\n" });
    expect(chat.code).toBe(1);
    expect(chat.stderr).toContain("flashchat serve --stop && flashchat chat --model qwen3.6-35b");
    const serve = await cli(["serve", "--model", "qwen3.6-35b"]);
    expect(serve.code).toBe(1);
    expect(serve.stderr).toContain("flashchat serve --stop && flashchat serve --model qwen3.6-35b");
    // nothing changed: the same server still answers with demo
    const again = await cli(["prompt", "--model", "demo", "--json", "--tokens", "2", "hi"]);
    ok(again);
    expect(JSON.parse(again.stdout)).toMatchObject({ model: "demo", via: "server" });
  });

  test("no MODEL_REPO configured: the running server's model is used and named", async () => {
    const r = await cli(["prompt", "--json", "--tokens", "2", "hi"]);
    ok(r);
    expect(r.stderr).toContain("no MODEL_REPO configured: using demo, the model the running server has loaded");
    expect(JSON.parse(r.stdout)).toMatchObject({ model: "demo", via: "server" });
  });

  test("serve --port X while it runs on another port says where it runs (exit 1); plain serve says it runs (exit 0)", async () => {
    const elsewhere = unusedPort();
    const r = await cli(["serve", "--port", elsewhere]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`the server is already running on port ${port}`);
    expect(r.stderr).toContain(`not ${elsewhere}`);
    const same = await cli(["serve"]);
    ok(same);
    expect(same.stderr).toContain(`the server is already running at http://127.0.0.1:${port}`);
  });

  test("models rm refuses a model the server has loaded", async () => {
    const r = await cli(["models", "rm", "demo", "--yes"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("has demo loaded");
    expect(r.stderr).toContain("flashchat serve --stop");
    const s = JSON.parse((await cli(["models", "show", "demo", "--json"])).stdout);
    expect(s.quantization.prepared4bit).toBe(true);
  });

  test.skipIf(!hasTmux)("on a terminal: asks to restart; N keeps demo (exit 1), y restarts the server with the asked model", async () => {
    const before = readPidFile(pidFile)!.pid;
    const run = (answer: string) => {
      const term = new Tmux(t.dir, [process.execPath, join(repoRoot, "scripts", "flashchat.ts"), "prompt", "--model", other, "--tokens", "2", "hi"], env, { cwd: t.dir, cols: 200 });
      return { term, answer };
    };
    const no = run("n");
    try {
      await no.term.waitFor(`demo is loaded; restart the server with ${other}? [y/N]`, 60_000, "screen");
      no.term.type("n");
      no.term.send("Enter");
      const screen = await no.term.waitFor("[exited 1]", 60_000, "screen");
      expect(screen).toContain(`demo is loaded, not ${other}; nothing changed`);
    } finally {
      no.term.kill();
    }
    expect(readPidFile(pidFile)!.pid).toBe(before);

    const yes = run("y");
    try {
      await yes.term.waitFor(`restart the server with ${other}? [y/N]`, 60_000, "screen");
      yes.term.type("y");
      yes.term.send("Enter");
      const screen = await yes.term.waitFor("[exited 0]", 180_000, "screen");
      expect(screen).toContain(`stopped the server (pid ${before})`);
    } finally {
      yes.term.kill();
    }
    const s = JSON.parse((await cli(["status", "--json"])).stdout);
    expect(s.loaded.model).toBe(other);
    expect(s.loaded.pid).not.toBe(before);
    expect(readFileSync(join(env.XDG_CONFIG_HOME!, "flashchat", "logs", "server.log"), "utf8")).toContain(`(model ${other})`);
  });
});
