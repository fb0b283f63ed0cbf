// -q and -v through the real CLI: -q leaves only the result and errors (no banners, progress or stats lines);
// -v shows each step on stderr with the time since start and its duration. The real engine on the fixture model.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { resolveModelArtifactsDir } from "../../lib/model/artifacts.ts";
import { prepareFixtureArtifacts, writeFixtureCheckpoint } from "../server/_real-model.ts";
import { unusedPort } from "../helpers/cli.ts";

// spawned processes and the engine are slow on a loaded machine
setDefaultTimeout(120_000);

const CLI = join(import.meta.dir, "..", "..", "scripts", "flashchat.ts");
const tmp = mkdtempSync(join(tmpdir(), "flashchat-qv-"));
const modelDir = join(tmp, "tiny-model");
const home = join(tmp, "home");
const env: Record<string, string> = {
  PATH: process.env.PATH ?? "",
  HOME: home,
  XDG_CONFIG_HOME: join(home, ".config"),
  XDG_DATA_HOME: join(home, ".local/share"),
  XDG_CACHE_HOME: join(home, ".cache"),
  NO_COLOR: "1",
  FLASHCHAT_ARTIFACTS_DIR: join(tmp, "artifacts"),
  FLASHCHAT_THREADS: "1",
  FLASHCHAT_MODEL_REPO: modelDir,
  FLASHCHAT_SERVER_PORT: unusedPort(),
};

beforeAll(async () => {
  mkdirSync(home, { recursive: true });
  writeFixtureCheckpoint(modelDir);
  await prepareFixtureArtifacts(modelDir, resolveModelArtifactsDir({ artifactsDir: env.FLASHCHAT_ARTIFACTS_DIR!, modelRepo: modelDir }, { modelId: modelDir }));
});
afterAll(async () => {
  await run(["serve", "--stop"]);
  rmSync(tmp, { recursive: true, force: true });
});

async function run(args: string[], stdin?: string) {
  await using proc = Bun.spawn([process.execPath, CLI, ...args], { env, cwd: tmp, stdin: stdin === undefined ? "ignore" : new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
  return { stdout, stderr, code };
}

/** The -v step lines: "+1.234s what (56 ms)" (the duration is there for steps that took time). */
const steps = (stderr: string) => stderr.split("\n").flatMap((l) => (/\+\d+\.\d{3}s /.test(l) ? [l.replace(/^.*?\+\d+\.\d{3}s /, "")] : []));
const expectStep = (stderr: string, what: RegExp) => expect(steps(stderr).some((s) => what.test(s))).toBe(true);

describe("prompt (no server: the CLI runs the model for this reply)", () => {
  test("default: says it is loading the model; -q: only the reply; -v: config, tokenizer, engine, TTFT and total, timed", async () => {
    const plain = await run(["prompt", "--tokens", "3", "hello"]);
    expect(plain.code).toBe(0);
    expect(plain.stderr).toContain("no server is running: loading");

    const quiet = await run(["-q", "prompt", "--tokens", "3", "hello"]);
    expect(quiet.code).toBe(0);
    expect(quiet.stdout.length).toBeGreaterThan(0); // the reply (3 tokens, then a newline)
    expect(quiet.stderr).toBe("");

    const verbose = await run(["prompt", "--tokens", "3", "hello", "-v"]);
    expect(verbose.code).toBe(0);
    for (const what of [/^config: .* \(\d+ ms\)$/, /^server: none at http:\/\/127\.0\.0\.1:\d+ \(\d+ ms\)$/, /^tokenizer: loaded from its cache \(\d+ ms\)$/, /^engine: loaded .* \(\d+ ms\)$/, /^first token \(TTFT\) \(\d+ ms\)$/, /^reply: done \(\d+ tokens\) \(\d+ ms\)$/])
      expectStep(verbose.stderr, what);
    expect(verbose.stdout).not.toMatch(/\+\d+\.\d{3}s/); // steps never reach stdout
  });
});

describe("config get and status", () => {
  test("-q: the value / the table and nothing on stderr; -v: the config sources and each check, timed", async () => {
    const quiet = await run(["config", "get", "SERVER_PORT", "-q"]);
    expect(quiet).toEqual({ code: 0, stdout: `${env.FLASHCHAT_SERVER_PORT}\n`, stderr: "" });
    const verbose = await run(["-v", "config", "get", "SERVER_PORT"]);
    expect(verbose.stdout).toBe(`${env.FLASHCHAT_SERVER_PORT}\n`);
    expectStep(verbose.stderr, new RegExp(`^config: ${join(home, ".config", "flashchat", "config")}, .*FLASHCHAT_SERVER_PORT.* \\(\\d+ ms\\)$`));

    const status = await run(["status", "-q"]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain("engine");
    expect(status.stderr).toBe("");
    const vstatus = await run(["status", "-v"]);
    expect(vstatus.stdout).toBe(status.stdout);
    for (const what of [/^config: /, /^engine: built, up to date \(\d+ ms\)$/, /^server: not running \(\d+ ms\)$/]) expectStep(vstatus.stderr, what);
  });

  test("a user mistake is still one clear line and exit 2 with -q (errors are never silenced)", async () => {
    const r = await run(["-q", "config", "get", "NO_SUCH_KEY"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("unknown setting NO_SUCH_KEY");
    expect(r.stderr).not.toContain(" at ");
  });
});

describe("setup --dry-run", () => {
  test("-q still prints the plan (what a dry run is for), -v adds the planning step", async () => {
    const quiet = await run(["setup", "--dry-run", "-q"]);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toContain("extract weights");
    expect(quiet.stderr).not.toMatch(/\[(info|warn|debug|log)\]/);
    const verbose = await run(["setup", "--dry-run", "-v"]);
    expectStep(verbose.stderr, /^setup: planned .* \(0 step\(s\) to do\) \(\d+ ms\)$/);
  });
});

describe("serve and chat (piped)", () => {
  test("serve -v shows the start and the wait for the model; -q says nothing; chat -q prints only the reply, -v the steps", async () => {
    const started = await run(["serve", "-v"]);
    expect(started.code).toBe(0);
    expectStep(started.stderr, /^server: started pid \d+ on http:\/\/127\.0\.0\.1:\d+, waiting for it to load the model .*\(\d+ ms\)$/);
    expectStep(started.stderr, /^server: ready \(engine loaded\) \(\d+ ms\)$/);
    expect(started.stderr).toContain("the server is running at");

    const again = await run(["serve", "-q"]);
    expect(again).toEqual({ code: 0, stdout: "", stderr: "" });

    const plain = await run(["chat"], "hello\n");
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain("/help for commands");
    expect(plain.stdout).toMatch(/tok\/s/);
    expect(plain.stdout).toContain("saved · resume with");

    const quiet = await run(["chat", "-q"], "hello\n");
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe("");
    for (const banner of ["/help for commands", "tok/s", "resume with"]) expect(quiet.stdout).not.toContain(banner);

    const verbose = await run(["-v", "chat"], "hello\n");
    expect(verbose.code).toBe(0);
    for (const what of [/^config: /, /^server: reusing the one running at http:\/\/127\.0\.0\.1:\d+ .*\(\d+ ms\)$/, /^first token \(TTFT\) \(\d+ ms\)$/, /^reply: done .*\(\d+ ms\)$/])
      expectStep(verbose.stderr, what);

    const stop = await run(["serve", "--stop", "-q"]);
    expect(stop.code).toBe(0);
  });
});
