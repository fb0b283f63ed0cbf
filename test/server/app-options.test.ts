// Server options that need their own server: API key, health while loading / after a failed load,
// http and prompt logs, graceful stop with a stream in flight, bind safety.
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import OpenAI from "openai";
import { join } from "pathe";
import { ApiBindError, checkBindSafety } from "../../lib/server/origin.ts";
import { createFakeEngineFactory } from "./_fake-engine.ts";
import { createTempDir, startTestServer } from "./_server-fixture.ts";

// spawned processes and the engine are slow on a loaded machine
setDefaultTimeout(30_000);

const readJson = (r: Response): Promise<any> => r.json();

describe("server options", () => {
  test("with an API key every route but /health needs it", async () => {
    using tmp = createTempDir("flashchat-key-");
    const server = await startTestServer(tmp.dir, { startEngine: createFakeEngineFactory().start, apiKey: "s3cret" });
    try {
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
      const noKey = await fetch(`${server.url}/v1/models`);
      expect(noKey.status).toBe(401);
      expect((await readJson(noKey)).error.type).toBe("authentication_error");
      expect((await fetch(`${server.url}/v1/models`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
      const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "wrong", maxRetries: 0 });
      expect(await bad.models.list().catch((e) => e)).toBeInstanceOf(OpenAI.AuthenticationError);
      const good = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "s3cret", maxRetries: 0 });
      const r = await good.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
      expect(r.usage!.completion_tokens).toBe(2);
    } finally {
      await server.stop(100);
    }
  });

  test("/health says loading (503) until the engine is ready; completions meanwhile get 503 + Retry-After", async () => {
    using tmp = createTempDir("flashchat-loading-");
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const fake = createFakeEngineFactory({ startGate: gate });
    const serverP = startTestServer(tmp.dir, { startEngine: fake.start });
    // startTestServer awaits the engine; poll the port through the log instead
    let url = "";
    for (let i = 0; i < 200 && !url; i++) {
      await Bun.sleep(10);
      const log = existsSync(join(tmp.dir, "logs", "server.log")) ? readFileSync(join(tmp.dir, "logs", "server.log"), "utf8") : "";
      url = /listening on (\S+)/.exec(log)?.[1] ?? "";
    }
    const h = await fetch(`${url}/health`);
    expect(h.status).toBe(503);
    expect(await readJson(h)).toMatchObject({ status: "loading", model: "tiny" });
    const c = await fetch(`${url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ messages: [{ role: "user", content: "x" }] }) });
    expect(c.status).toBe(503);
    expect(c.headers.get("retry-after")).toBe("2");
    open();
    const server = await serverP;
    expect(await (await fetch(`${url}/health`)).json()).toMatchObject({ status: "ok" });
    await server.stop(100);
  });

  test("an engine that fails to load: /health says error with the reason", async () => {
    using tmp = createTempDir("flashchat-fail-");
    const server = await startTestServer(tmp.dir, { startEngine: createFakeEngineFactory({ failStarts: 1 }).start });
    const h = await fetch(`${server.url}/health`);
    expect(h.status).toBe(503);
    expect(await readJson(h)).toMatchObject({ status: "error", error: "cannot open model_weights.bin" });
    expect(readFileSync(join(tmp.dir, "logs", "server.log"), "utf8")).toContain("engine failed to start: cannot open model_weights.bin");
    await server.stop(100);
  });

  test("http.log and prompts.log, private files", async () => {
    using tmp = createTempDir("flashchat-httplog-");
    const httpLogFile = join(tmp.dir, "logs", "http.log");
    const promptLogFile = join(tmp.dir, "logs", "prompts.log");
    const server = await startTestServer(tmp.dir, { startEngine: createFakeEngineFactory().start, httpLogFile, promptLogFile });
    const r = await fetch(`${server.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ messages: [{ role: "user", content: "ping" }], stream: true, max_tokens: 2 }) });
    await r.text();
    await server.stop(100);
    const http = readFileSync(httpLogFile, "utf8");
    expect(http).toContain('"content":"ping"');
    expect(http).toContain("data: [DONE]");
    expect(readFileSync(promptLogFile, "utf8")).toContain("<|im_start|>user\nping<|im_end|>\n<|im_start|>assistant\n");
    for (const f of [httpLogFile, promptLogFile]) expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(statSync(join(tmp.dir, "logs")).mode & 0o777).toBe(0o700);
  });

  test("graceful stop lets an in-flight stream finish, then stops the engine", async () => {
    using tmp = createTempDir("flashchat-stop-");
    const fake = createFakeEngineFactory({ tokenDelayMs: 5 });
    const server = await startTestServer(tmp.dir, { startEngine: fake.start });
    const r = await fetch(`${server.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ messages: [{ role: "user", content: "x" }], stream: true, max_tokens: 20 }) });
    const body = r.text();
    await Bun.sleep(10);
    await server.stop(5000);
    expect(await body).toEndWith("data: [DONE]\n\n");
    expect(await fake.engines[0]!.exited).toBe(0);
  });

  test("a non-streaming request whose client disconnects is cancelled", async () => {
    using tmp = createTempDir("flashchat-abort-");
    const fake = createFakeEngineFactory({ tokenDelayMs: 5 });
    const server = await startTestServer(tmp.dir, { startEngine: fake.start, defaults: { maxTokens: 4000, temperature: 0.7, topP: 0.9 } });
    const ac = new AbortController();
    const p = fetch(`${server.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ messages: [{ role: "user", content: "x" }], max_tokens: 3000 }), signal: ac.signal }).catch((e) => e);
    // abort once the generation runs on the engine (not while the prompt is still being prepared)
    for (let i = 0; i < 1000 && (fake.engines[0]?.nGenerates ?? 0) === 0; i++) await Bun.sleep(5);
    await Bun.sleep(30);
    ac.abort();
    await p;
    const log = join(tmp.dir, "logs", "server.log");
    for (let i = 0; i < 100 && !readFileSync(log, "utf8").includes("cancelled by the client"); i++) await Bun.sleep(20);
    expect(readFileSync(log, "utf8")).toMatch(/POST \/v1\/chat\/completions 200 .*completion=\d+ .*cancelled by the client/);
    const n = Number(/completion=(\d+)/.exec(readFileSync(log, "utf8").split("\n").find((l) => l.includes("cancelled"))!)![1]);
    expect(n).toBeLessThan(3000);
    await server.stop(100);
  });

  test("the prompt cache can persist across restarts (snapshot file)", async () => {
    using tmp = createTempDir("flashchat-persist-");
    const snapshotFile = join(tmp.dir, "cache", "snapshots.bin");
    require("node:fs").mkdirSync(join(tmp.dir, "cache"));
    const body = JSON.stringify({ messages: [{ role: "system", content: "You are a helpful assistant." }, { role: "user", content: "hi" }], max_tokens: 2 });
    const ask = async (url: string) => (await readJson(await fetch(`${url}/v1/chat/completions`, { method: "POST", body }))).usage.prompt_tokens_details.cached_tokens;
    const s1 = await startTestServer(tmp.dir, { startEngine: createFakeEngineFactory().start, snapshotFile });
    expect(await ask(s1.url)).toBe(0);
    await s1.stop(100);
    expect(existsSync(snapshotFile)).toBe(true);
    const s2 = await startTestServer(tmp.dir, { startEngine: createFakeEngineFactory().start, snapshotFile });
    expect(await ask(s2.url)).toBeGreaterThan(0);
    await s2.stop(100);
  });

  test("unset defaults (undefined, as the CLI passes them) mean reasoning_content and no test hooks", async () => {
    using tmp = createTempDir("flashchat-defaults-");
    const defaults = { maxTokens: 64, temperature: 0.7, topP: 0.9, reasoningFormat: undefined, allowForceTokens: undefined };
    const server = await startTestServer(tmp.dir, { startEngine: createFakeEngineFactory().start, defaults });
    const r = await fetch(`${server.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ messages: [{ role: "user", content: "x" }], force_text: "hi" }) });
    expect(r.status).toBe(400);
    expect((await readJson(r)).error.param).toBe("force_text");
    await server.stop(100);
    const s2 = await startTestServer(tmp.dir, { startEngine: createFakeEngineFactory().start, defaults: { ...defaults, allowForceTokens: true } });
    const j = await readJson(await fetch(`${s2.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ messages: [{ role: "user", content: "x" }], force_text: "<think>\nhm\n</think>\n\nHi" }) }));
    expect(j.choices[0].message).toEqual({ role: "assistant", content: "Hi", reasoning_content: "hm" });
    await s2.stop(100);
  });

  test("binding beyond loopback needs an API key or --insecure", () => {
    expect(() => checkBindSafety("127.0.0.1", undefined, false)).not.toThrow();
    expect(() => checkBindSafety("0.0.0.0", undefined, false)).toThrow(ApiBindError);
    expect(() => checkBindSafety("0.0.0.0", "k", false)).not.toThrow();
    expect(() => checkBindSafety("0.0.0.0", undefined, true)).not.toThrow();
  });
});
