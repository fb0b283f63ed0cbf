// scripts/serve.ts and `flashchat serve` as the user runs them: exit codes, messages, pid file, ports.
import { afterAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { writePidFile } from "../../lib/process/pid-file.ts";
import { isProcessAlive } from "../../lib/process/process-info.ts";

// spawned processes and the engine are slow on a loaded machine
setDefaultTimeout(30_000);

const ROOT = join(import.meta.dir, "..", "..");
const SERVE = join(ROOT, "scripts", "serve.ts");
const CLI = join(ROOT, "scripts", "flashchat.ts");
const tmp = mkdtempSync(join(tmpdir(), "flashchat-serve-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function homeEnv(name: string): Record<string, string> {
  const home = join(tmp, name);
  mkdirSync(home, { recursive: true });
  const env: Record<string, string> = { PATH: process.env.PATH ?? "", HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_DATA_HOME: join(home, ".local/share"), XDG_CACHE_HOME: join(home, ".cache"), NO_COLOR: "1" };
  return env;
}
const pidFileOf = (env: Record<string, string>) => join(env.XDG_CONFIG_HOME!, "flashchat", "server.pid");

async function run(argv: string[], env: Record<string, string>) {
  await using proc = Bun.spawn([process.execPath, ...argv], { env, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [stdout, stderr, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
  return { stdout, stderr, code };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen({ host: "127.0.0.1", port: 0 }, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

describe("serve --stop", () => {
  test("nothing running: says so, exit 0", async () => {
    const env = homeEnv("stop-none");
    const r = await run([SERVE, "--stop", "--port", String(await freePort())], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("no server is running");
  });

  test("stale pid file: cleaned; a reused pid is left alone", async () => {
    const env = homeEnv("stop-stale");
    await using sleeper = Bun.spawn(["sleep", "30"]);
    writePidFile(pidFileOf(env), { pid: sleeper.pid, port: 1 });
    const r = await run([CLI, "serve", "--stop"], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`pid ${sleeper.pid} is not a flashchat server`);
    expect(isProcessAlive(sleeper.pid)).toBe(true);
    expect(existsSync(pidFileOf(env))).toBe(false);
    sleeper.kill();
  });
});

describe("serve start failures", () => {
  test("port in use without a terminal: fails naming free ports", async () => {
    const env = homeEnv("port");
    const srv = createServer();
    const port = await new Promise<number>((resolve) => srv.listen({ host: "127.0.0.1", port: 0 }, () => resolve((srv.address() as { port: number }).port)));
    try {
      const r = await run([SERVE, "--port", String(port), "--model", "demo"], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`port ${port} on 127.0.0.1 is in use`);
      expect(r.stderr).toMatch(/free ports: \d+/);
      expect(r.stderr).not.toContain(" at ");
    } finally {
      srv.close();
    }
  });

  test("a non-loopback bind without an API key is refused", async () => {
    const env = homeEnv("bind");
    const r = await run([SERVE, "--host", "0.0.0.0", "--port", String(await freePort())], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("FLASHCHAT_API_KEY");
  });

  test("a SERVER_HOST that only starts like a loopback address needs an API key too", async () => {
    const env = { ...homeEnv("bind-lookalike"), FLASHCHAT_SERVER_HOST: "127.0.0.1.nip.io" };
    const r = await run([SERVE, "--port", String(await freePort())], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("binding 127.0.0.1.nip.io exposes the server beyond this machine");
    expect(r.stderr).not.toContain(" at ");
  });

  test("a model whose checkpoint is broken: setup (run first, as by chat and prompt) names what is wrong", async () => {
    const env = homeEnv("broken");
    const { writeFixtureCheckpoint } = await import("../server/_real-model.ts");
    const modelDir = join(tmp, "broken", "tiny-model");
    writeFixtureCheckpoint(modelDir);
    rmSync(join(modelDir, "model-00002-of-00002.safetensors"));
    const r = await run([SERVE, "--model", modelDir, "--port", String(await freePort())], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("model-00002-of-00002.safetensors");
    expect(r.stderr).not.toContain(" at ");
  });
});

describe("with a prepared model (real engine)", () => {
  async function prepared(name: string) {
    const { resolveModelArtifactsDir } = await import("../../lib/model/artifacts.ts");
    const { prepareFixtureArtifacts, writeFixtureCheckpoint } = await import("../server/_real-model.ts");
    const env = homeEnv(name);
    const modelDir = join(tmp, name, "tiny-model");
    writeFixtureCheckpoint(modelDir);
    env.FLASHCHAT_ARTIFACTS_DIR = join(tmp, name, "artifacts");
    env.FLASHCHAT_THREADS = "1";
    await prepareFixtureArtifacts(modelDir, resolveModelArtifactsDir({ artifactsDir: env.FLASHCHAT_ARTIFACTS_DIR, modelRepo: modelDir }, { modelId: modelDir }));
    return { env, modelDir };
  }

  test("`flashchat serve` in the background: an engine that fails to load points at the log and leaves no pid file", async () => {
    const { env, modelDir } = await prepared("bg-fail");
    const { resolveModelArtifactsDir } = await import("../../lib/model/artifacts.ts");
    const manifest = join(resolveModelArtifactsDir({ artifactsDir: env.FLASHCHAT_ARTIFACTS_DIR!, modelRepo: modelDir }, { modelId: modelDir }), "model_weights.json");
    const m = JSON.parse(readFileSync(manifest, "utf8"));
    m.config.hidden_size = 96; // shapes no longer match: the engine refuses to load
    writeFileSync(manifest, JSON.stringify(m));
    const r = await run([CLI, "serve", "--model", modelDir, "--port", String(await freePort())], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("the server failed to start");
    expect(r.stderr).toContain("see the log:");
    expect(existsSync(pidFileOf(env))).toBe(false);
  });

  test("a context above the model's maximum is refused with exit 2 naming both numbers (--context, FLASHCHAT_CONTEXT_SIZE)", async () => {
    const { env, modelDir } = await prepared("ctx-max");
    const r = await run([CLI, "serve", "--model", modelDir, "--context", "5000", "--port", String(await freePort())], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("CONTEXT_SIZE 5000 (--context) is larger than the maximum context of");
    expect(r.stderr).toContain(": 4096 tokens");
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(existsSync(pidFileOf(env))).toBe(false);
    const p = await run([CLI, "prompt", "--model", modelDir, "hi"], { ...env, FLASHCHAT_CONTEXT_SIZE: "8192" });
    expect(p.code).toBe(2);
    expect(p.stderr).toContain("CONTEXT_SIZE 8192 (FLASHCHAT_CONTEXT_SIZE) is larger than the maximum context of");
    const bad = await run([CLI, "serve", "--model", modelDir, "--context", "-3", "--port", String(await freePort())], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("CONTEXT_SIZE");
  });

  test("`flashchat serve` starts in the background, answers, says when already running; --stop leaves nothing", async () => {
    const { env, modelDir } = await prepared("bg");
    env.FLASHCHAT_CONTEXT_SIZE = "2048"; // both reach the engine through the config
    env.FLASHCHAT_KV_CACHE_TYPE = "q8";
    const port = await freePort();
    const r = await run([CLI, "serve", "--model", modelDir, "--port", String(port)], env);
    expect(r.stderr).toContain(`the server is running at http://127.0.0.1:${port}`);
    expect(r.code).toBe(0);
    const info = JSON.parse(await Bun.file(pidFileOf(env)).text());
    expect(isProcessAlive(info.pid)).toBe(true);
    const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { status: string; pid: number; engine: { pid: number } };
    expect(health).toMatchObject({ status: "ok", pid: info.pid, context_length: 2048, engine: { context: 2048, kv_type: "q8" } });
    const models = (await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json()) as { data: { id: string; context_length: number }[] };
    expect(models.data[0]!.id).toBe(modelDir);
    expect(models.data[0]!.context_length).toBe(2048);
    const again = await run([CLI, "serve", "--model", modelDir, "--port", String(port)], env);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("already running");
    const stop = await run([CLI, "serve", "--stop"], env);
    expect(stop.code).toBe(0);
    expect(stop.stderr).toContain(`stopped the server (pid ${info.pid})`);
    expect(isProcessAlive(info.pid)).toBe(false);
    expect(isProcessAlive(health.engine.pid)).toBe(false);
    expect(existsSync(pidFileOf(env))).toBe(false);
    const none = await run([CLI, "serve", "--stop"], env);
    expect(none.stderr).toContain("no server is running");
  }, 60_000);

  test("the foreground server exits 0 on SIGTERM and stops its engine", async () => {
    const { env, modelDir } = await prepared("fg");
    const port = await freePort();
    await using proc = Bun.spawn([process.execPath, SERVE, "--model", modelDir, "--port", String(port)], { env, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    let health: { status: string; engine?: { pid: number } } | undefined;
    for (let i = 0; i < 300 && health?.status !== "ok"; i++) {
      await Bun.sleep(50);
      health = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.json() as Promise<typeof health>).catch(() => undefined);
    }
    expect(health!.status).toBe("ok");
    const bg = await run([CLI, "serve", "--model", modelDir, "--port", String(port)], env);
    expect(bg.code).toBe(0);
    expect(bg.stderr).toContain(`a flashchat server already answers at http://127.0.0.1:${port}`);
    expect(existsSync(pidFileOf(env))).toBe(false);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect(isProcessAlive(health!.engine!.pid)).toBe(false);
  }, 60_000);

  test("SIGTERM with the engine stopped (SIGSTOP) and a stream in flight: exit 0, the engine SIGKILLed after the shutdown deadline", async () => {
    const { env, modelDir } = await prepared("fg-stopped");
    const port = await freePort();
    await using proc = Bun.spawn([process.execPath, SERVE, "--model", modelDir, "--port", String(port)], { env, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    let health: { status: string; engine?: { pid: number } } | undefined;
    for (let i = 0; i < 300 && health?.status !== "ok"; i++) {
      await Bun.sleep(50);
      health = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.json() as Promise<typeof health>).catch(() => undefined);
    }
    expect(health!.status).toBe("ok");
    const enginePid = health!.engine!.pid;
    process.kill(enginePid, "SIGSTOP");
    const stream = fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "hello" }], max_tokens: 500, stream: true }),
    }).then((r) => r.text()).catch(() => "");
    // the request reached the engine's queue: the server reports it busy
    for (let i = 0; i < 300; i++) {
      const h = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.json() as Promise<any>);
      if (h.queue?.busy) break;
      await Bun.sleep(20);
    }
    const t0 = performance.now();
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    const stopMs = performance.now() - t0;
    await stream;
    expect(isProcessAlive(enginePid)).toBe(false);
    const log = readFileSync(join(env.XDG_CONFIG_HOME!, "flashchat", "logs", "server.log"), "utf8");
    expect(log).toContain(`engine pid ${enginePid} did not exit within 2000 ms of shutdown: killed (SIGKILL)`);
    console.log(`SIGTERM with a SIGSTOPped engine: server exited after ${Math.round(stopMs)} ms`);
  }, 60_000);
});
