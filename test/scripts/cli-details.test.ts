// Small promises of the CLI, through the real thing: kebab-case flags in help, `help` listed, no colour codes in
// pipes, no clock time on terminal errors, `config get KEY extra` is a usage error, `setup --dry-run` offline,
// and `make engine` saying what it does.
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "pathe";
import { COMMANDS } from "../../lib/commands.ts";
import { makeTempHome, repoRoot, runCli, unusedPort } from "../helpers/cli.ts";
import { ensureEngineBuilt } from "../server/_real-model.ts";
import { hasTmux, Tmux } from "../tmux/tmux.ts";

setDefaultTimeout(120_000);

const t = makeTempHome("fc-cli-details-");
// colour would be on if anything looked only at TERM / FORCE-free defaults: make the pipe the only reason it is off
const env: Record<string, string> = { ...t.env, FLASHCHAT_SERVER_PORT: unusedPort(), TERM: "xterm-256color" };
delete env.NO_COLOR;
const cli = (args: string[], extra: Record<string, string> = {}) => runCli(args, { env: { ...env, ...extra }, cwd: t.dir });
afterAll(() => t[Symbol.dispose]());

test("every command's help shows its flags in kebab-case, without colour codes in a pipe; `help` is listed", async () => {
  for (const c of COMMANDS) {
    const r = await cli([c.name, "--help"]);
    expect({ cmd: c.name, code: r.code }).toEqual({ cmd: c.name, code: 0 });
    expect({ cmd: c.name, camel: r.stdout.match(/--[a-z]+[A-Z]\w*/g) }).toEqual({ cmd: c.name, camel: null });
    expect({ cmd: c.name, ansi: r.stdout.includes("\x1b[") }).toEqual({ cmd: c.name, ansi: false });
  }
  expect((await cli(["serve", "--help"])).stdout).toContain("--test-hooks");
  expect((await cli(["benchmark", "run", "--help"])).stdout).toContain("--active-experts=<K>");
  const direct = await runCli(["--help"], { env, script: join(repoRoot, "scripts", "setup.ts") });
  expect(direct.stdout).toContain("--dry-run");
  expect(direct.stdout).not.toContain("\x1b[");
  const top = await cli(["--help"]);
  expect(top.stdout).toMatch(/^\s+help\s+Help on a command/m);
  expect((await cli(["help", "serve"])).stdout).toBe((await cli(["serve", "--help"])).stdout);
});

test("piped output and errors carry no colour codes", async () => {
  for (const args of [["models"], ["status"], ["models", "show", "demo"], ["prompt", "--model", "/nonexistent-folder", "hi"]]) {
    const r = await cli(args);
    expect({ args, ansi: (r.stdout + r.stderr).includes("\x1b[") }).toEqual({ args, ansi: false });
  }
});

test("config get KEY extra is a usage error (exit 2)", async () => {
  const r = await cli(["config", "get", "SERVER_PORT", "extra"]);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("unexpected argument: extra");
  expect(r.stdout).toBe("");
});

test("setup --dry-run works offline for a registry model: sizes estimated from its dimensions, nothing written", async () => {
  const r = await cli(["setup", "--dry-run", "--model", "qwen3.6-35b"], { HF_ENDPOINT: `http://127.0.0.1:${unusedPort()}` });
  expect({ code: r.code, stderr: r.code ? r.stderr : "" }).toEqual({ code: 0, stderr: "" });
  expect(r.stderr).toContain("about 69.3 GB of Qwen/Qwen3.6-35B-A3B");
  expect(r.stderr).toContain("cannot be reached: sizes are estimated from qwen3.6-35b's dimensions");
  expect(existsSync(join(env.HF_HOME!, "hub", "models--Qwen--Qwen3.6-35B-A3B"))).toBe(false);
  // a repo the registry does not know still needs the Hub: one clear error
  const unknown = await cli(["setup", "--dry-run", "--model", "some-org/some-model"], { HF_ENDPOINT: `http://127.0.0.1:${unusedPort()}` });
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toContain("cannot reach");
});

test("make engine says what it did", async () => {
  await ensureEngineBuilt();
  const p = Bun.spawnSync(["make", "-s", "engine"], { cwd: repoRoot, env: { ...process.env, MAKEFLAGS: "" } });
  expect(p.exitCode).toBe(0);
  expect(p.stdout.toString()).toContain("engine: native/build/flashchat-engine is up to date");
});

test.skipIf(!hasTmux)("an error on a terminal is one line without a clock time", async () => {
  const term = new Tmux(t.dir, [process.execPath, join(repoRoot, "scripts", "flashchat.ts"), "prompt", "--model", "/nonexistent-folder", "hi"], env, { cwd: t.dir, cols: 160 });
  try {
    const screen = await term.waitFor("[exited 1]", 30_000, "screen");
    expect(screen).toContain("model folder not found: /nonexistent-folder");
    expect(screen).not.toMatch(/\d{1,2}:\d\d:\d\d/);
  } finally {
    term.kill();
  }
});
