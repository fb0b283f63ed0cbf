import { afterAll, beforeEach, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { resolvePromptText } from "../../lib/chat/prompt.ts";
import { unusedPort, xdgEnv } from "../helpers/cli.ts";
import { type Script, startStubServer } from "../chat/stub-server.ts";

// these tests spawn processes: give them room on a busy machine
setDefaultTimeout(30_000);

const script = join(import.meta.dir, "../../scripts/prompt.ts");
const home = mkdtempSync(join(tmpdir(), "fc-prompt-"));
let next: Script = { content: [] };
const stub = startStubServer(() => next);
afterAll(() => {
  stub.server.stop(true);
  rmSync(home, { recursive: true, force: true });
});
beforeEach(() => {
  stub.requests.length = 0;
});

const baseEnv = { ...xdgEnv(home), FLASHCHAT_SERVER_PORT: String(stub.server.port) };

async function run(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}) {
  const proc = Bun.spawn([process.execPath, script, ...args], {
    env: { ...baseEnv, ...opts.env },
    cwd: home,
    stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
  return { stdout, stderr, code };
}

test("stdout is the reply only (no thinking, no colour, no status); the request carries the options", async () => {
  next = { reasoning: ["hidden thoughts"], content: ["**Blue** light ", "scatters."] };
  const r = await run(["Why is the sky blue?", "--tokens", "64", "--no-think", "--system", "be brief"]);
  expect(r.code).toBe(0);
  expect(r.stdout).toBe("**Blue** light scatters.\n");
  expect(r.stderr).toBe("");
  expect(stub.requests).toHaveLength(1);
  expect(stub.requests[0]).toMatchObject({
    model: "stub-model",
    messages: [
      { role: "system", content: "be brief" },
      { role: "user", content: "Why is the sky blue?" },
    ],
    max_tokens: 64,
    stream: true,
    chat_template_kwargs: { enable_thinking: false },
  });
});

test("- reads the prompt from stdin; SHOW_THINKING sends thinking to stderr, never stdout", async () => {
  next = { reasoning: ["pondering"], content: ["42"] };
  const r = await run(["-"], { stdin: "what is\nthe answer?\n", env: { FLASHCHAT_SHOW_THINKING: "1" } });
  expect(r.code).toBe(0);
  expect(r.stdout).toBe("42\n");
  expect(r.stderr).toBe("pondering\n");
  expect(stub.requests[0].messages).toEqual([{ role: "user", content: "what is\nthe answer?" }]);
  expect(stub.requests[0].chat_template_kwargs).toBeUndefined();
});

test("no prompt and piped input: `echo x | flashchat prompt` reads the prompt from stdin", async () => {
  next = { content: ["ok"] };
  const r = await run([], { stdin: "from a pipe\n" });
  expect(r.code).toBe(0);
  expect(r.stdout).toBe("ok\n");
  expect(stub.requests[0].messages).toEqual([{ role: "user", content: "from a pipe" }]);
});

test("--json prints one object with the reply, reasoning, usage and stats", async () => {
  next = { reasoning: ["r"], content: ["a", "b"] };
  const r = await run(["hi", "--json"]);
  expect(r.code).toBe(0);
  const o = JSON.parse(r.stdout);
  expect(o).toMatchObject({ model: "stub-model", content: "ab", reasoning: "r", finish_reason: "stop", via: "server", usage: { completion_tokens: 3 } });
  expect(o.stats.completion_tokens).toBe(3);
  expect(r.stdout.trim().split("\n")).toHaveLength(1);
});

test("--seed N (or SEED) is sent; without one each reply gets a new random seed; --json reports the seed sent", async () => {
  next = { content: ["a"] };
  expect((await run(["hi", "--seed", "5"])).code).toBe(0);
  next = { content: ["b"] };
  expect((await run(["hi"], { env: { FLASHCHAT_SEED: "77" } })).code).toBe(0);
  next = { content: ["c"] };
  const r1 = await run(["hi", "--json"]);
  next = { content: ["d"] };
  const r2 = await run(["hi", "--json"]);
  const seeds = stub.requests.map((r) => r.seed);
  expect(seeds.slice(0, 2)).toEqual([5, 77]);
  for (const s of seeds.slice(2)) expect(Number.isSafeInteger(s) && s >= 0).toBe(true);
  expect(seeds[2]).not.toBe(seeds[3]);
  expect(JSON.parse(r1.stdout).seed).toBe(seeds[2]);
  expect(JSON.parse(r2.stdout).seed).toBe(seeds[3]);
});

test("usage errors exit 2 with one line on stderr and nothing on stdout", async () => {
  for (const args of [[], ["  "], ["hi", "--tokens", "lots"], ["hi", "--tokens", "0"], ["hi", "--seed", "x"], ["hi", "--seed", "-1"]]) {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack
    expect(r.stderr.trim().split("\n").length).toBeLessThanOrEqual(2); // the error and maybe a hint
  }
});

test("a server error is reported on stderr with a non-zero exit", async () => {
  next = { content: [], status: 400 };
  const r = await run(["hi"]);
  expect(r.code).toBe(1);
  expect(r.stdout).toBe("");
  expect(r.stderr).toContain("the server refused the request (HTTP 400): bad thing");
});

test("no server and a model that cannot be found: one clear error on stderr, exit 1", async () => {
  const port = unusedPort();
  const r = await run(["hi", "--model", "./no-such-model"], { env: { FLASHCHAT_SERVER_PORT: port } });
  expect(r.code).toBe(1);
  expect(r.stdout).toBe("");
  expect(r.stderr).toContain("model folder not found");
});

test("prompt text: as given, or stdin without its final newline", async () => {
  expect(await resolvePromptText("hi")).toBe("hi");
  expect(await resolvePromptText("-", async () => "a\nb\n")).toBe("a\nb");
  expect(resolvePromptText(undefined, async () => "", true)).rejects.toThrow("no prompt given");
  // no prompt with piped input reads it, as - does
  expect(await resolvePromptText(undefined, async () => "piped\n", false)).toBe("piped");
  expect(resolvePromptText(undefined, async () => " \n", false)).rejects.toThrow("no prompt given");
});

test("no server running: the demo model is set up (--yes), run for this one reply on the real engine, and nothing is left running", async () => {
  const port = unusedPort();
  const r = await run(["Hello", "--model", "demo", "--yes", "--tokens", "8", "--json"], { env: { FLASHCHAT_SERVER_PORT: port } });
  expect(r.stderr).toContain("no server is running: loading demo for this reply");
  expect(r.code).toBe(0);
  const o = JSON.parse(r.stdout);
  expect(o).toMatchObject({ model: "demo", via: "local", finish_reason: "length", usage: { completion_tokens: 8 } });
  expect(o.content.length).toBeGreaterThan(0);
  // no engine or server of ours is left behind, and no pid file was written
  const ps = Bun.spawnSync(["ps", "-eo", "args"]).stdout.toString();
  expect(ps).not.toContain(join(home, "d"));
  expect(await Bun.file(join(home, "c/flashchat/server.pid")).exists()).toBe(false);
}, 60_000);

test("no server running and API_KEY set: the private server requires the key, and prompt sends it", async () => {
  const port = unusedPort();
  const r = await run(["Hello", "--model", "demo", "--yes", "--tokens", "4", "--json"], { env: { FLASHCHAT_SERVER_PORT: port, FLASHCHAT_API_KEY: "s3cret" } });
  expect(r.stderr).not.toContain("HTTP 401");
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ model: "demo", via: "local", usage: { completion_tokens: 4 } });
}, 60_000);

test("Ctrl-C (SIGINT) stops the reply: what arrived stays on stdout, exit 130", async () => {
  next = { content: Array.from({ length: 300 }, (_, i) => `w${i} `), delayMs: 20 };
  const proc = Bun.spawn([process.execPath, script, "go on and on"], { env: baseEnv, cwd: home, stdout: "pipe", stderr: "pipe" });
  const reader = proc.stdout.getReader();
  let out = "";
  while (!out.includes("w3 ")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
  }
  proc.kill("SIGINT");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
  }
  const [stderr, code] = await Promise.all([proc.stderr.text(), proc.exited]);
  expect(code).toBe(130);
  expect(out.startsWith("w0 w1 w2 w3 ")).toBe(true);
  expect(out).not.toContain("w299");
  expect(stderr).toBe(""); // quietly: no error line
});

test("a server that is still loading is waited for, then used", async () => {
  let nHealth = 0;
  const loading = startStubServer(() => ({ content: ["ready now"] }), { health: () => (++nHealth < 8 ? "loading" : "ok") });
  try {
    const r = await run(["hi"], { env: { FLASHCHAT_SERVER_PORT: String(loading.server.port) } });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("ready now\n");
    expect(r.stderr).toContain("the server is loading the model");
    expect(nHealth).toBeGreaterThanOrEqual(8);
  } finally {
    loading.server.stop(true);
  }
});

test("FLASHCHAT_API_KEY is sent to a server that requires a key", async () => {
  const locked = startStubServer(() => ({ content: ["let in"] }), { apiKey: "s3cret" });
  try {
    const env = { FLASHCHAT_SERVER_PORT: String(locked.server.port) };
    const ok = await run(["hi"], { env: { ...env, FLASHCHAT_API_KEY: "s3cret" } });
    expect([ok.code, ok.stdout]).toEqual([0, "let in\n"]);
    expect(locked.requests[0].model).toBe("stub-model"); // /v1/models was read with the key too
    const refused = await run(["hi"], { env });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("(HTTP 401): invalid or missing API key");
  } finally {
    locked.server.stop(true);
  }
});
