import { afterAll, expect, test } from "bun:test";
import { type ChatEvent, ServerApiError, ServerGoneError, loadHealth, loadModelId, streamChatCompletion } from "../../lib/client/api.ts";
import { serverUrl } from "../../lib/net.ts";
import { type Script, startStubServer } from "./stub-server.ts";

let script: Script = { content: [] };
const stub = startStubServer(() => script);
afterAll(() => stub.server.stop(true));

async function collect(it: AsyncGenerator<ChatEvent>) {
  const out: ChatEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

test("streams reasoning and content, then done with usage; sends the whole conversation", async () => {
  script = { reasoning: ["hm", "m"], content: ["Hel", "lo"] };
  const messages = [
    { role: "system" as const, content: "be brief" },
    { role: "user" as const, content: "hi" },
    { role: "assistant" as const, content: "hey" },
    { role: "user" as const, content: "again" },
  ];
  const events = await collect(streamChatCompletion({ baseUrl: stub.baseUrl, model: "stub-model", messages, maxTokens: 50, temperature: 0, think: false }));
  expect(events).toEqual([
    { type: "reasoning", text: "hm" },
    { type: "reasoning", text: "m" },
    { type: "content", text: "Hel" },
    { type: "content", text: "lo" },
    { type: "done", finishReason: "stop", usage: { prompt_tokens: 11, completion_tokens: 4, total_tokens: 15 } },
  ]);
  expect(stub.requests.at(-1)).toEqual({
    messages,
    model: "stub-model",
    stream: true,
    stream_options: { include_usage: true },
    reasoning_format: "separate",
    max_tokens: 50,
    temperature: 0,
    chat_template_kwargs: { enable_thinking: false },
  });
});

test("a stream that breaks off is a ServerGoneError, after the text that arrived", async () => {
  script = { content: ["a", "b", "c"], dieAfter: 2 };
  const seen: string[] = [];
  const err = await (async () => {
    try {
      for await (const e of streamChatCompletion({ baseUrl: stub.baseUrl, messages: [{ role: "user", content: "x" }] })) if (e.type === "content") seen.push(e.text);
    } catch (e) {
      return e;
    }
  })();
  expect(seen).toEqual(["a", "b"]);
  expect(err).toBeInstanceOf(ServerGoneError);
});

test("nothing listening is a ServerGoneError; an HTTP 400 is a ServerApiError with the server's message", async () => {
  const dead = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  const url = `http://127.0.0.1:${dead.port}`;
  dead.stop(true);
  expect(collect(streamChatCompletion({ baseUrl: url, messages: [] }))).rejects.toBeInstanceOf(ServerGoneError);
  expect(await loadHealth(url)).toBeUndefined();
  script = { content: [], status: 400 };
  const e = await collect(streamChatCompletion({ baseUrl: stub.baseUrl, messages: [] })).catch((x) => x);
  expect(e).toBeInstanceOf(ServerApiError);
  expect(e.message).toBe("the server refused the request (HTTP 400): bad thing");
});

test("abort stops the stream", async () => {
  script = { content: Array.from({ length: 50 }, (_, i) => `${i} `), delayMs: 20 };
  const controller = new AbortController();
  const seen: string[] = [];
  const err = await (async () => {
    try {
      for await (const e of streamChatCompletion({ baseUrl: stub.baseUrl, messages: [], signal: controller.signal })) {
        if (e.type === "content") seen.push(e.text);
        if (seen.length === 3) controller.abort();
      }
    } catch (e) {
      return e;
    }
  })();
  expect(seen).toHaveLength(3);
  expect((err as Error).name).toBe("AbortError");
});

test("health, model id and base URLs", async () => {
  expect(await loadHealth(stub.baseUrl)).toEqual({ status: "ok", model: "stub-model" });
  expect(await loadModelId(stub.baseUrl)).toBe("stub-model");
  expect(serverUrl("127.0.0.1", 8000)).toBe("http://127.0.0.1:8000");
  expect(serverUrl("0.0.0.0", 8000)).toBe("http://127.0.0.1:8000");
  expect(serverUrl("", 8000)).toBe("http://127.0.0.1:8000");
  expect(serverUrl("::1", 80)).toBe("http://[::1]:80");
  // a wildcard IPv6 bind is reached through IPv6 loopback (it may be v6-only, where 127.0.0.1 finds nothing)
  expect(serverUrl("::", 80)).toBe("http://[::1]:80");
});
