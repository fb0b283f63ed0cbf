// Nothing heavy on the event loop: prompts are rendered and tokenized in a worker after a cheap byte check, and
// the token count is checked against the context before queueing (real Qwen3 tokenizer, fake engine).
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import type { RunningServer } from "../../lib/server/app.ts";
import { join } from "pathe";
import { createFakeEngineFactory } from "./_fake-engine.ts";
import { createTempDir, startTestServer } from "./_server-fixture.ts";

setDefaultTimeout(60_000);

const QWEN3 = join(import.meta.dir, "../fixtures/qwen3-tokenizer");
const readJson = (r: Response): Promise<any> => r.json();
const chat = (url: string, content: string, signal?: AbortSignal) =>
  fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ messages: [{ role: "user", content }], max_tokens: 2 }), signal });

describe("prompt preparation off the event loop", () => {
  // a context of 65536 tokens: at most 65536 * 128 bytes (Qwen3's longest token) can fit; 10 MB cannot,
  // 1 MB of words (~200k tokens) passes the byte check and is refused after tokenizing
  const tmp = createTempDir("flashchat-prompts-");
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer(tmp.dir, { tokenizerDir: QWEN3, startEngine: createFakeEngineFactory({ context: 65536 }).start, maxBodyBytes: 16 * 1024 * 1024 });
  });
  afterAll(async () => {
    await server.stop(100);
    tmp[Symbol.dispose]();
  });

  test("a 10 MB message is refused by its byte size at once (400 context_length_exceeded); /health is fine", async () => {
    const r = await chat(server.url, "word ".repeat(2 * 1024 * 1024));
    expect(r.status).toBe(400);
    const e = (await readJson(r)).error;
    expect(e).toMatchObject({ code: "context_length_exceeded", param: "messages" });
    expect(e.message).toContain("10485760 bytes");
    expect(e.message).toContain("65536 tokens");
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  test("/health answers while a 1 MB prompt is tokenized; then a 400 naming the tokens sent and allowed", async () => {
    let answered = false;
    const big = chat(server.url, "hello world this is text ".repeat(40_000)).then(async (r) => ({ r, j: await readJson(r), healthFirst: answered }));
    // the condition: /health itself reports the prompt being prepared, so it answered during the tokenization
    for (let i = 0; i < 5000 && !answered; i++) {
      const h = await readJson(await fetch(`${server.url}/health`));
      if (h.queue?.preparing === 1) answered = true;
      else await Bun.sleep(1);
    }
    expect(answered).toBe(true);
    const { r, j, healthFirst } = await big;
    expect(healthFirst).toBe(true);
    expect(r.status).toBe(400);
    expect(j.error.code).toBe("context_length_exceeded");
    expect(j.error.message).toMatch(/the prompt is \d+ tokens; this model's context allows 65536 \(prompt and reply together\), so a prompt may have at most 65535/);
    const ok = await chat(server.url, "hi");
    expect(ok.status).toBe(200);
  });

  test("a client that leaves during tokenization frees the worker; the next request is served", async () => {
    const ac = new AbortController();
    const big = chat(server.url, "a".repeat(400_000), ac.signal).catch((e) => e);
    let seen = false;
    for (let i = 0; i < 5000 && !seen; i++) {
      seen = (await readJson(await fetch(`${server.url}/health`))).queue?.preparing === 1;
      if (!seen) await Bun.sleep(1);
    }
    expect(seen).toBe(true);
    ac.abort();
    await big;
    for (let i = 0; i < 5000; i++) {
      if ((await readJson(await fetch(`${server.url}/health`))).queue?.preparing === 0) break;
      await Bun.sleep(2);
    }
    const r = await chat(server.url, "hi");
    expect(r.status).toBe(200);
    expect((await readJson(r)).usage.completion_tokens).toBe(2);
  });
});

test("prompts waiting for the worker are bounded like the queue: one more is a 429", async () => {
  using tmp = createTempDir("flashchat-prompts-full-");
  const server = await startTestServer(tmp.dir, { tokenizerDir: QWEN3, startEngine: createFakeEngineFactory({ context: 65536 }).start, maxQueue: 1 });
  try {
    const big = "hello world this is text ".repeat(20_000);
    // one may run (here: be prepared to run) and maxQueue = 1 wait; the third is refused
    const first = chat(server.url, big);
    for (let i = 0; i < 5000 && (await readJson(await fetch(`${server.url}/health`))).queue?.preparing !== 1; i++) await Bun.sleep(1);
    const second = chat(server.url, big);
    for (let i = 0; i < 5000 && (await readJson(await fetch(`${server.url}/health`))).queue?.preparing !== 2; i++) await Bun.sleep(1);
    const third = await chat(server.url, big);
    expect(third.status).toBe(429);
    expect(third.headers.get("retry-after")).toBeTruthy();
    expect((await readJson(third)).error.code).toBe("queue_full");
    expect((await first).status).toBe(400); // too many tokens for the context
    expect((await second).status).toBe(400);
  } finally {
    await server.stop(100);
  }
});

test("the prompt workers do not load the grammar engine (only structured output compiles grammars)", async () => {
  // what the worker imports, in a fresh process: no xgrammar module among the loaded ones
  const probe = `await import(${JSON.stringify(join(import.meta.dir, "../../lib/server/generate.ts"))}); console.log(JSON.stringify(Object.keys(require.cache).filter((k) => k.includes("xgrammar"))));`;
  await using proc = Bun.spawn([process.execPath, "-e", probe], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
  expect(err).toBe("");
  expect(code).toBe(0);
  expect(JSON.parse(out)).toEqual([]);
});

