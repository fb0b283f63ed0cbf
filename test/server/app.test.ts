// The HTTP layer against a real Bun.serve on 127.0.0.1:0, with an in-process engine stand-in (fast, scriptable);
// test/server/e2e.test.ts repeats the key paths with the real engine binary.
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import OpenAI from "openai";
import { join } from "pathe";
import type { RunningServer } from "../../lib/server/app.ts";
import { parseSseFrames } from "../../lib/server/sse.ts";
import { createFakeEngineFactory } from "./_fake-engine.ts";
import { createTempDir, startTestServer } from "./_server-fixture.ts";

// spawned processes and the engine are slow on a loaded machine
setDefaultTimeout(30_000);

const readJson = (r: Response): Promise<any> => r.json();

const tmp = createTempDir("flashchat-app-");
const fake = createFakeEngineFactory({ tokenDelayMs: 1 });
let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  server = await startTestServer(tmp.dir, { startEngine: fake.start, maxQueue: 1, maxBodyBytes: 64 * 1024, defaults: { maxTokens: 256, temperature: 0.7, topP: 0.9, allowForceTokens: true } });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
});
afterAll(async () => {
  await server.stop(1000);
  tmp[Symbol.dispose]();
});

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });

const TOOLS = [{ type: "function" as const, function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } } } } }];

describe("basic routes", () => {
  test("/health is ok with the model id; /v1/models and /v1 describe the model", async () => {
    const h = await fetch(`${server.url}/health`);
    expect(h.status).toBe(200);
    expect(await readJson(h)).toMatchObject({ status: "ok", model: "tiny", pid: process.pid });
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["tiny"]);
    expect((await client.models.retrieve("tiny")).id).toBe("tiny");
    expect(await (await fetch(`${server.url}/v1`)).json()).toMatchObject({ name: "flashchat", model: "tiny" });
  });

  test("requests from a web page on another origin are refused (403); loopback origins are fine", async () => {
    const body = JSON.stringify({ messages: [{ role: "user", content: "x" }], max_tokens: 1 });
    const evil = await fetch(`${server.url}/v1/chat/completions`, { method: "POST", headers: { origin: "https://evil.example", "content-type": "text/plain" }, body });
    expect(evil.status).toBe(403);
    expect((await readJson(evil)).error.code).toBe("origin_not_allowed");
    const local = await fetch(`${server.url}/v1/chat/completions`, { method: "POST", headers: { origin: "http://localhost:3000" }, body });
    expect(local.status).toBe(200);
  });

  test("unknown route is a 404 in OpenAI's error shape", async () => {
    const r = await fetch(`${server.url}/v1/nope`);
    expect(r.status).toBe(404);
    expect(await readJson(r)).toEqual({ error: { message: "no route GET /v1/nope", type: "not_found_error", param: null, code: "not_found" } });
  });
});

describe("chat completions", () => {
  test("non-streaming: text, usage, finish_reason length", async () => {
    const r = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Hello" }], max_tokens: 5, seed: 1 });
    expect(r.object).toBe("chat.completion");
    expect(r.choices[0]!.finish_reason).toBe("length");
    expect(r.choices[0]!.message.role).toBe("assistant");
    expect(r.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(r.usage!.completion_tokens).toBe(5);
    expect(r.usage!.prompt_tokens).toBeGreaterThan(5);
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + 5);
  });

  test("the same seed gives the same text; streaming equals non-streaming", async () => {
    const req = { model: "tiny", messages: [{ role: "user" as const, content: "Hi" }], max_tokens: 12, seed: 42 };
    const a = await client.chat.completions.create(req);
    const b = await client.chat.completions.create(req);
    expect(a.choices[0]!.message.content).toBe(b.choices[0]!.message.content);
    let streamed = "";
    let usage: unknown;
    const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(streamed).toBe(a.choices[0]!.message.content!);
    expect(usage).toMatchObject({ completion_tokens: 12 });
  });

  test("raw SSE framing: role first, finish chunk, usage chunk, [DONE]", async () => {
    const r = await post("/v1/chat/completions", { messages: [{ role: "user", content: "x" }], max_tokens: 3, stream: true, stream_options: { include_usage: true } });
    expect(r.headers.get("content-type")).toStartWith("text/event-stream");
    const text = await r.text();
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
    const frames = parseSseFrames(text).map((f) => f.data);
    expect(frames.at(-1)).toBe("[DONE]");
    const chunks = frames.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks[0].choices[0].delta).toEqual({ role: "assistant", content: "" });
    expect(chunks.at(-2).choices[0].finish_reason).toBe("length");
    expect(chunks.at(-1).choices).toEqual([]);
    expect(chunks.at(-1).usage.completion_tokens).toBe(3);
    for (const c of chunks) expect(c.id).toBe(chunks[0].id);
  });

  test("stop strings end the reply (reported as stop) and are not included", async () => {
    const forced = "The answer is four. END of it";
    const r = await post("/v1/chat/completions", { messages: [{ role: "user", content: "q" }], force_text: forced, stop: ["END", "zzz"] });
    const j = await readJson(r);
    expect(j.choices[0].message.content).toBe("The answer is four. ");
    expect(j.choices[0].finish_reason).toBe("stop");
  });

  test("tool calls through forced output: streamed with ids, finish_reason tool_calls, no raw tags", async () => {
    const forced = '<think>\nNeed weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n<function=get_weather>\n<parameter=city>\nOslo\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>';
    const body = { model: "tiny", messages: [{ role: "user" as const, content: "weather?" }], tools: TOOLS };
    const r = await client.chat.completions.create({ ...body, force_text: forced } as never);
    const msg = r.choices[0]!.message as { content: string | null; reasoning_content?: string; tool_calls?: { id: string; function: { name: string; arguments: string } }[] };
    expect(r.choices[0]!.finish_reason).toBe("tool_calls");
    expect(msg.content).toBeNull();
    expect(msg.reasoning_content).toBe("Need weather.");
    expect(msg.tool_calls!.map((c) => [c.function.name, JSON.parse(c.function.arguments)])).toEqual([
      ["get_weather", { city: "Paris" }],
      ["get_weather", { city: "Oslo", days: 3 }],
    ]);
    const stream = await client.chat.completions.create({ ...body, stream: true, force_text: forced } as never);
    let content = "";
    const calls: { index: number; id?: string; name?: string; args: string }[] = [];
    let finish: string | null = null;
    for await (const chunk of stream as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>) {
      const c = chunk.choices[0]!;
      content += c.delta.content ?? "";
      for (const tc of c.delta.tool_calls ?? []) {
        calls[tc.index] ??= { index: tc.index, args: "" };
        if (tc.id) calls[tc.index]!.id = tc.id;
        if (tc.function?.name) calls[tc.index]!.name = tc.function.name;
        calls[tc.index]!.args += tc.function?.arguments ?? "";
      }
      finish = c.finish_reason ?? finish;
    }
    expect(content).toBe("");
    expect(finish).toBe("tool_calls");
    expect(calls.map((c) => [c.name, JSON.parse(c.args)])).toEqual([
      ["get_weather", { city: "Paris" }],
      ["get_weather", { city: "Oslo", days: 3 }],
    ]);
    expect(calls[0]!.id).toMatch(/^call_/);
    expect(calls[0]!.id).not.toBe(calls[1]!.id);
  });

  test("reasoning: separate by default, inline in <think> tags, or dropped", async () => {
    const forced = "<think>\nhmm\n</think>\n\nHello";
    const ask = async (extra: object) => (await readJson(await post("/v1/chat/completions", { messages: [{ role: "user", content: "q" }], force_text: forced, ...extra }))).choices[0].message;
    expect(await ask({})).toMatchObject({ content: "Hello", reasoning_content: "hmm" });
    expect(await ask({ reasoning_format: "inline" })).toEqual({ role: "assistant", content: "<think>\nhmm\n</think>\n\nHello" });
    expect(await ask({ reasoning_format: "drop" })).toEqual({ role: "assistant", content: "Hello" });
  });

  test("prompt cache: a continued conversation reports cached prompt tokens", async () => {
    const sys = { role: "system" as const, content: "You are a helpful assistant." };
    const first = await client.chat.completions.create({ model: "tiny", messages: [sys, { role: "user", content: "What is the weather in Paris?" }], max_tokens: 4, seed: 3 });
    const reply = first.choices[0]!.message.content!;
    const second = await client.chat.completions.create({
      model: "tiny",
      messages: [sys, { role: "user", content: "What is the weather in Paris?" }, { role: "assistant", content: reply }, { role: "user", content: "And tomorrow?" }],
      max_tokens: 4,
    });
    const cached = (second.usage as { prompt_tokens_details?: { cached_tokens: number } }).prompt_tokens_details!.cached_tokens;
    expect(cached).toBeGreaterThanOrEqual(first.usage!.prompt_tokens);
    expect(cached).toBeLessThan(second.usage!.prompt_tokens);
    // a different conversation with the same system prompt reuses the system-prompt snapshot
    const third = await client.chat.completions.create({ model: "tiny", messages: [sys, { role: "user", content: "Something else" }], max_tokens: 2 });
    const cached3 = (third.usage as { prompt_tokens_details?: { cached_tokens: number } }).prompt_tokens_details!.cached_tokens;
    expect(cached3).toBeGreaterThan(0);
  });

  test("max_tokens is clamped to the context left", async () => {
    const r = await post("/v1/chat/completions", { messages: [{ role: "user", content: "x" }], max_tokens: 1_000_000, seed: 1 });
    expect(r.status).toBe(200);
    expect((await readJson(r)).usage.completion_tokens).toBe(256); // the server's MAX_TOKENS
  });
});

describe("responses API", () => {
  test("non-streaming text with usage", async () => {
    const r = await client.responses.create({ model: "tiny", input: "Hello", max_output_tokens: 4, instructions: "be brief" });
    expect(r.object).toBe("response");
    expect(r.status).toBe("incomplete");
    expect(r.output_text.length).toBeGreaterThan(0);
    expect(r.usage!.output_tokens).toBe(4);
  });

  test("function calls and their outputs, streaming events", async () => {
    const forced = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>';
    const tools = [{ type: "function" as const, name: "get_weather", parameters: TOOLS[0]!.function.parameters, strict: false }];
    const r = await client.responses.create({ model: "tiny", input: "weather in Rome?", tools, force_text: forced } as never);
    const call = (r as OpenAI.Responses.Response).output.find((o) => o.type === "function_call") as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call.name).toBe("get_weather");
    expect(JSON.parse(call.arguments)).toEqual({ city: "Rome" });
    // feed the output back
    const r2 = await client.responses.create({
      model: "tiny",
      input: [
        { role: "user", content: "weather in Rome?" },
        { type: "function_call", call_id: call.call_id, name: "get_weather", arguments: call.arguments },
        { type: "function_call_output", call_id: call.call_id, output: "sunny" },
      ],
      tools,
      force_text: "It is sunny.",
    } as never);
    expect((r2 as OpenAI.Responses.Response).output_text).toBe("It is sunny.");
    const stream = await client.responses.create({ model: "tiny", input: "hi", stream: true, force_text: "<think>\nok\n</think>\n\nHi there" } as never);
    const types: string[] = [];
    let text = "";
    for await (const ev of stream as unknown as AsyncIterable<OpenAI.Responses.ResponseStreamEvent>) {
      types.push(ev.type);
      if (ev.type === "response.output_text.delta") text += ev.delta;
    }
    expect(text).toBe("Hi there");
    expect(types[0]).toBe("response.created");
    expect(types.at(-1)).toBe("response.completed");
    expect(types).toContain("response.reasoning_text.delta");
    expect(types).toContain("response.output_item.done");
  });
});

describe("errors", () => {
  test("malformed JSON, wrong types, unknown model, missing messages: 400 naming the field", async () => {
    const bad = await post("/v1/chat/completions", "{not json");
    expect(bad.status).toBe(400);
    expect((await readJson(bad)).error.code).toBe("invalid_json");
    for (const [body, param] of [
      [{ messages: [{ role: "user", content: "x" }], temperature: "hot" }, "temperature"],
      [{ model: "gpt-4", messages: [{ role: "user", content: "x" }] }, "model"],
      [{ model: "tiny" }, "messages"],
    ] as const) {
      const r = await post("/v1/chat/completions", body);
      expect(r.status).toBe(400);
      const j = await readJson(r);
      expect(j.error.param).toBe(param);
      expect(j.error.type).toBe("invalid_request_error");
    }
    const e = await client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }).catch((e) => e);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
  });

  test("a body over the limit is a 413", async () => {
    const r = await post("/v1/chat/completions", { messages: [{ role: "user", content: "x".repeat(70 * 1024) }] });
    expect(r.status).toBe(413);
    expect((await readJson(r)).error.code).toBe("request_too_large");
  });

  test("a prompt longer than the context is a 400", async () => {
    const r = await post("/v1/chat/completions", { messages: [{ role: "user", content: "word ".repeat(5000) }] });
    expect(r.status).toBe(400);
    expect((await readJson(r)).error.code).toBe("context_length_exceeded");
  });
});

describe("concurrency and cancellation", () => {
  test("queue overflow is a 429 with Retry-After; queued requests complete in order", async () => {
    const long = { messages: [{ role: "user", content: "x" }], max_tokens: 250, seed: 1 };
    const first = post("/v1/chat/completions", long);
    await Bun.sleep(20);
    const second = post("/v1/chat/completions", long);
    await Bun.sleep(20);
    const third = await post("/v1/chat/completions", long);
    expect(third.status).toBe(429);
    expect(Number(third.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await readJson(third)).error.type).toBe("rate_limit_error");
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
  });

  test("a client that aborts cancels its generation", async () => {
    const ac = new AbortController();
    const engine = fake.engines.at(-1)!;
    const stream = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 2000, stream: true }, { signal: ac.signal });
    let n = 0;
    await (async () => {
      for await (const _ of stream) if (++n === 3) ac.abort();
    })().catch(() => {});
    expect(n).toBeLessThan(100);
    // the engine is free again quickly: the next request runs at once
    const t0 = performance.now();
    const r = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 2 });
    expect(r.choices[0]!.finish_reason).toBe("length");
    expect(engine.nGenerates).toBeGreaterThan(1);
    expect(readFileSync(join(tmp.dir, "logs", "server.log"), "utf8")).toMatch(/completion=\d+ .*cancelled by the client/);
    void t0;
  });

  test("engine killed mid-stream: the stream fails with 503, the engine restarts, the next request works", async () => {
    const engine = fake.engines.at(-1)!;
    const stream = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 2000, stream: true });
    let n = 0;
    const err = await (async () => {
      for await (const _ of stream) if (++n === 3) engine.crash();
    })().catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(String(err.message)).toContain("engine");
    // non-streaming requests during the restart get 503 (or succeed once it is back)
    for (let i = 0; i < 200 && server.host.state !== "ok"; i++) await Bun.sleep(10);
    expect(server.host.state).toBe("ok");
    expect(server.host.nRestarts).toBe(1);
    const r = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 2 });
    expect(r.usage!.completion_tokens).toBe(2);
  });
});

describe("logs", () => {
  test("server.log has one line per request with tokens and speed, user-only permissions", async () => {
    const file = join(tmp.dir, "logs", "server.log");
    const lines = readFileSync(file, "utf8").split("\n").filter((l) => l.includes("POST /v1/chat/completions 200"));
    expect(lines.length).toBeGreaterThan(3);
    expect(lines[0]).toMatch(/prompt=\d+ cached=\d+ completion=\d+ ttft=\d+ms [\d.]+tok\/s \d+ms/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});
