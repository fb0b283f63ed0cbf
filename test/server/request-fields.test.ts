// Request fields: seed range, logprobs / top_logprobs / logit_bias end to end (shape, on the fake engine),
// response_format, and every field this server does not support answered with a 400 naming it.
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import OpenAI from "openai";
import type { RunningServer } from "../../lib/server/app.ts";
import { parseSseFrames } from "../../lib/server/sse.ts";
import { validateChatRequest, validateResponsesRequest } from "../../lib/server/validate.ts";
import { createFakeEngineFactory } from "./_fake-engine.ts";
import { createTempDir, startTestServer } from "./_server-fixture.ts";

setDefaultTimeout(30_000);

const msgs = [{ role: "user", content: "hi" }];
const paramOf = (fn: () => unknown): string | null | undefined => {
  try {
    fn();
  } catch (e) {
    return (e as { param?: string | null }).param;
  }
  return undefined;
};

describe("validation", () => {
  test("seed: an integer in [0, 2^53-1]; 1e308, 2^64, -1 and 1.5 are 400s naming 'seed'", () => {
    expect(validateChatRequest({ messages: msgs, seed: 0 }).sampling.seed).toBe(0);
    expect(validateChatRequest({ messages: msgs, seed: 2 ** 53 - 1 }).sampling.seed).toBe(2 ** 53 - 1);
    for (const seed of [1e308, 2 ** 64, 2 ** 53, -1, 1.5, "7"]) expect(paramOf(() => validateChatRequest({ messages: msgs, seed }))).toBe("seed");
    expect(paramOf(() => validateResponsesRequest({ input: "x", seed: 2 ** 64 }))).toBe("seed");
  });

  test("logprobs / top_logprobs / logit_bias are parsed and range-checked", () => {
    expect(validateChatRequest({ messages: msgs }).logprobs).toBeUndefined();
    expect(validateChatRequest({ messages: msgs, logprobs: true }).logprobs).toEqual({ top: 0 });
    expect(validateChatRequest({ messages: msgs, logprobs: true, top_logprobs: 5 }).logprobs).toEqual({ top: 5 });
    expect(paramOf(() => validateChatRequest({ messages: msgs, top_logprobs: 5 }))).toBe("top_logprobs");
    expect(paramOf(() => validateChatRequest({ messages: msgs, logprobs: true, top_logprobs: 21 }))).toBe("top_logprobs");
    expect(paramOf(() => validateChatRequest({ messages: msgs, logprobs: "yes" }))).toBe("logprobs");
    expect(validateChatRequest({ messages: msgs, logit_bias: { "42": -100, "7": 3.5 } }).logitBias).toEqual({ "42": -100, "7": 3.5 });
    expect(paramOf(() => validateChatRequest({ messages: msgs, logit_bias: { "42": 101 } }))).toBe("logit_bias.42");
    expect(paramOf(() => validateChatRequest({ messages: msgs, logit_bias: { abc: 1 } }))).toBe("logit_bias");
    expect(paramOf(() => validateChatRequest({ messages: msgs, logit_bias: [1] }))).toBe("logit_bias");
  });

  test("response_format / text.format: text, json_object, json_schema; anything else is a 400 naming the part", () => {
    for (const type of ["text", "json_object"]) expect(paramOf(() => validateChatRequest({ messages: msgs, response_format: { type } }))).toBeUndefined();
    expect(paramOf(() => validateChatRequest({ messages: msgs, response_format: { type: "json_schema", json_schema: { name: "a", schema: {} } } }))).toBeUndefined();
    expect(paramOf(() => validateChatRequest({ messages: msgs, response_format: { type: "xml" } }))).toBe("response_format.type");
    expect(paramOf(() => validateChatRequest({ messages: msgs, response_format: { type: "json_schema" } }))).toBe("response_format.json_schema");
    expect(paramOf(() => validateChatRequest({ messages: msgs, response_format: { type: "json_schema", json_schema: { schema: 1 } } }))).toBe("response_format.json_schema.schema");
    expect(paramOf(() => validateResponsesRequest({ input: "x", text: { format: { type: "json_schema", name: "a", schema: [] } } }))).toBe("text.format.schema");
  });

  test("unknown fields and unsupported OpenAI fields are 400s naming the field; no-op identifiers are accepted", () => {
    for (const field of ["temprature", "functions", "function_call", "audio", "prediction", "web_search_options", "verbosity"])
      expect(paramOf(() => validateChatRequest({ messages: msgs, [field]: 1 }))).toBe(field);
    expect(paramOf(() => validateChatRequest({ messages: msgs, store: true }))).toBe("store");
    expect(paramOf(() => validateChatRequest({ messages: msgs, parallel_tool_calls: false }))).toBe("parallel_tool_calls");
    expect(paramOf(() => validateChatRequest({ messages: msgs, modalities: ["text", "audio"] }))).toBe("modalities");
    expect(paramOf(() => validateChatRequest({ messages: msgs, stream_options: { include_usage: true, foo: 1 } }))).toBe("stream_options.foo");
    const ok = { messages: msgs, user: "u1", metadata: { a: "b" }, store: false, parallel_tool_calls: true, service_tier: "auto", modalities: ["text"], safety_identifier: "x", prompt_cache_key: "k" };
    expect(paramOf(() => validateChatRequest(ok))).toBeUndefined();
    for (const field of ["top_logprobs", "include", "background", "conversation", "max_tool_calls", "logit_bias", "messages"])
      expect(paramOf(() => validateResponsesRequest({ input: "x", [field]: 1 }))).toBe(field);
    expect(paramOf(() => validateResponsesRequest({ input: "x", truncation: "auto" }))).toBe("truncation");
    expect(paramOf(() => validateResponsesRequest({ input: "x", truncation: "disabled", store: false, text: { format: { type: "text" } } }))).toBeUndefined();
  });
});

describe("over HTTP (fake engine)", () => {
  const tmp = createTempDir("flashchat-fields-");
  const fake = createFakeEngineFactory({ tokenDelayMs: 1 });
  let server: RunningServer;
  let client: OpenAI;
  beforeAll(async () => {
    server = await startTestServer(tmp.dir, { startEngine: fake.start });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });
  afterAll(async () => {
    await server.stop(500);
    tmp[Symbol.dispose]();
  });

  test("an unsupported field is a 400 through the official client too", async () => {
    const e = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], response_format: { type: "xml" } as never }).catch((e) => e);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe("response_format.type");
  });

  test("logprobs: choices[].logprobs.content has one entry per token with token, logprob, bytes, top_logprobs", async () => {
    const r = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 6, seed: 3, logprobs: true, top_logprobs: 2 });
    const content = r.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(6);
    for (const e of content) {
      expect(e.logprob).toBe(-0.25);
      expect(e.bytes).toEqual([...new TextEncoder().encode(e.token)]);
      expect(e.top_logprobs).toHaveLength(2);
      expect(e.top_logprobs[0]!.token).toBe(e.token);
    }
    expect(content.map((e) => e.token).join("")).toBe(r.choices[0]!.message.content!);
    const plain = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 2 });
    expect(plain.choices[0]!.logprobs).toBeNull();
  });

  test("streaming logprobs ride on the chunks and add up to the same entries", async () => {
    const req = { model: "tiny", messages: [{ role: "user" as const, content: "x" }], max_tokens: 6, seed: 3, logprobs: true, top_logprobs: 1 };
    const whole = await client.chat.completions.create(req);
    const res = await fetch(`${server.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...req, stream: true }) });
    const entries = parseSseFrames(await res.text())
      .filter((f) => f.data !== "[DONE]")
      .flatMap((f) => JSON.parse(f.data).choices[0]?.logprobs?.content ?? []);
    expect(entries).toEqual(whole.choices[0]!.logprobs!.content as unknown[]);
  });

  test("a logit_bias id outside the vocabulary is a 400 naming it", async () => {
    const e = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], logit_bias: { "600": 5 } }).catch((e) => e);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe("logit_bias.600");
  });
});
