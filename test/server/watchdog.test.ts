// The engine watchdog and /health's real engine state, on the in-process fake engine that can stop answering
// and on the real engine binary stopped with SIGSTOP.
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "pathe";
import { parseSseFrames } from "../../lib/server/sse.ts";
import { createFakeEngineFactory } from "./_fake-engine.ts";
import { prepareFixtureArtifacts, writeFixtureCheckpoint } from "./_real-model.ts";
import { createTempDir, startTestServer } from "./_server-fixture.ts";

setDefaultTimeout(30_000);

const readJson = (r: Response): Promise<any> => r.json();
const chat = (url: string, body: Record<string, unknown>) =>
  fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], ...body }) });

async function waitFor(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await cond()) return;
    await Bun.sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("engine watchdog", () => {
  test("a silent engine is 'stalled' on /health (503), and 'ok' again once it writes", async () => {
    using tmp = createTempDir("flashchat-stall-");
    const fake = createFakeEngineFactory({ tokenDelayMs: 2 });
    const server = await startTestServer(tmp.dir, { startEngine: fake.start, engineWatchdogMs: 0, engineStalledAfterMs: 100 });
    try {
      const engine = fake.engines[0]!;
      engine.stall();
      const pending = chat(server.url, { max_tokens: 5 });
      await waitFor(async () => (await readJson(await fetch(`${server.url}/health`))).status === "stalled", "stalled");
      const h = await fetch(`${server.url}/health`);
      expect(h.status).toBe(503);
      expect((await readJson(h)).engine.silent_ms).toBeGreaterThan(100);
      engine.resume();
      const r = await pending;
      expect(r.status).toBe(200);
      expect((await readJson(r)).usage.completion_tokens).toBe(5);
      expect((await readJson(await fetch(`${server.url}/health`))).status).toBe("ok");
      expect(engine.exitedWith).toBeUndefined(); // watchdog off: nobody killed it
    } finally {
      await server.stop(100);
    }
  });

  test("no output past ENGINE_WATCHDOG_S: the request fails with 503 + Retry-After, the engine is killed and restarted", async () => {
    using tmp = createTempDir("flashchat-watchdog-");
    const fake = createFakeEngineFactory({ tokenDelayMs: 2 });
    const server = await startTestServer(tmp.dir, { startEngine: fake.start, engineWatchdogMs: 300 });
    try {
      const first = fake.engines[0]!;
      first.stall();
      const r = await chat(server.url, { max_tokens: 5 });
      expect(r.status).toBe(503);
      expect(r.headers.get("retry-after")).toBeTruthy();
      const body = await readJson(r);
      expect(body.error).toMatchObject({ type: "service_unavailable", code: "engine_stalled" });
      expect(body.error.message).toContain("no output");
      expect(first.exitedWith).toBe("SIGKILL");
      await waitFor(() => server.host.state === "ok", "the engine restarted");
      expect(fake.engines.length).toBe(2);
      const h = await readJson(await fetch(`${server.url}/health`));
      expect(h.status).toBe("ok");
      expect(h.last_restart.reason).toContain("engine watchdog");
      expect(h.last_restart.recovery_ms).toBeGreaterThanOrEqual(0);
      const again = await chat(server.url, { max_tokens: 3 });
      expect((await readJson(again)).usage.completion_tokens).toBe(3);
      expect(readFileSync(join(tmp.dir, "logs", "server.log"), "utf8")).toContain("engine watchdog: no output");
    } finally {
      await server.stop(100);
    }
  });

  test("a stream that stalls mid-reply ends with an SSE error frame", async () => {
    using tmp = createTempDir("flashchat-watchdog-sse-");
    const fake = createFakeEngineFactory({ tokenDelayMs: 2 });
    const server = await startTestServer(tmp.dir, { startEngine: fake.start, engineWatchdogMs: 300 });
    try {
      const r = await chat(server.url, { max_tokens: 4000, stream: true });
      expect(r.status).toBe(200);
      const reader = r.body!.getReader();
      let text = "";
      const decoder = new TextDecoder();
      let stalled = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        if (!stalled && text.split("\n\n").length > 4) {
          fake.engines[0]!.stall();
          stalled = true;
        }
      }
      const frames = parseSseFrames(text);
      const last = JSON.parse(frames.at(-1)!.data);
      expect(last.error).toMatchObject({ type: "service_unavailable", code: "engine_stalled" });
      await waitFor(() => server.host.state === "ok", "the engine restarted");
      expect(server.host.nRestarts).toBe(1);
    } finally {
      await server.stop(100);
    }
  });

  test("an idle engine is never killed, however long it is silent", async () => {
    using tmp = createTempDir("flashchat-watchdog-idle-");
    const fake = createFakeEngineFactory();
    const server = await startTestServer(tmp.dir, { startEngine: fake.start, engineWatchdogMs: 50 });
    try {
      // wait for several watchdog periods with nothing running (a condition on the host's own clock)
      const t = performance.now();
      await waitFor(() => performance.now() - t > 300, "watchdog periods");
      expect(fake.engines[0]!.exitedWith).toBeUndefined();
      expect(server.host.state).toBe("ok");
    } finally {
      await server.stop(100);
    }
  });
});

describe("stop", () => {
  test("stop() ends promptly with a stalled stream in flight; the engine is killed after the shutdown deadline", async () => {
    using tmp = createTempDir("flashchat-stop-stalled-");
    const fake = createFakeEngineFactory({ tokenDelayMs: 2 });
    const server = await startTestServer(tmp.dir, { startEngine: fake.start, engineWatchdogMs: 0 });
    const engine = fake.engines[0]!;
    const r = await chat(server.url, { max_tokens: 4000, stream: true });
    const reader = r.body!.getReader();
    await reader.read();
    engine.stall();
    await waitFor(() => server.host.silentMs > 2100, "silence");
    // grace of a minute: a silent engine must not get it
    await server.stop(60_000);
    expect(engine.exitedWith).toBe("SIGKILL");
    expect(readFileSync(join(tmp.dir, "logs", "server.log"), "utf8")).toContain("killed (SIGKILL)");
  });
});

describe("real engine", () => {
  test("SIGSTOPped mid-request: 'stalled', then the watchdog kills it (503), a new engine serves the next request", async () => {
    using tmp = createTempDir("flashchat-watchdog-real-");
    const modelDir = join(tmp.dir, "model");
    const artifactsDir = join(tmp.dir, "artifacts");
    writeFixtureCheckpoint(modelDir);
    await prepareFixtureArtifacts(modelDir, artifactsDir);
    const server = await startTestServer(tmp.dir, {
      tokenizerDir: modelDir,
      engine: { artifactsDir, threads: 1, context: 4096 },
      engineWatchdogMs: 1500,
      engineStalledAfterMs: 300,
    });
    try {
      expect(server.host.state).toBe("ok");
      const pid = server.host.engine!.pid;
      process.kill(pid, "SIGSTOP");
      const pending = chat(server.url, { max_tokens: 8 });
      const seen = new Set<string>();
      await waitFor(async () => {
        seen.add((await readJson(await fetch(`${server.url}/health`))).status);
        return seen.has("stalled");
      }, "stalled");
      const r = await pending;
      expect(r.status).toBe(503);
      expect((await readJson(r)).error.code).toBe("engine_stalled");
      await waitFor(() => server.host.state === "ok", "the engine restarted");
      expect(server.host.engine!.pid).not.toBe(pid);
      expect(() => process.kill(pid, 0)).toThrow(); // the stopped engine is gone (SIGKILL works on a stopped process)
      const h = await readJson(await fetch(`${server.url}/health`));
      expect(h.last_restart.reason).toContain("engine watchdog");
      console.log(`watchdog recovery (stall detected -> new engine ready), tiny fixture model: ${h.last_restart.recovery_ms} ms`);
      const again = await chat(server.url, { max_tokens: 4, temperature: 0 });
      expect((await readJson(again)).usage.completion_tokens).toBe(4);
    } finally {
      await server.stop(100);
    }
  });
});
