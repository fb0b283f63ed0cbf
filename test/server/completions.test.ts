// POST /v1/completions end to end: the real engine on the fixture model (tiny 512-id tokenizer), the real server on
// 127.0.0.1:0, the official `openai` client's completions API. Forced text runs through the engine's test hook.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import OpenAI from "openai";
import { join } from "pathe";
import type { RunningServer } from "../../lib/server/app.ts";
import { parseSseFrames } from "../../lib/server/sse.ts";
import { prepareFixtureArtifacts, writeFixtureCheckpoint } from "./_real-model.ts";
import { createTempDir, startTestServer } from "./_server-fixture.ts";

setDefaultTimeout(30_000);

const tmp = createTempDir("flashchat-completions-");
let server: RunningServer;
let client: OpenAI;
const post = (body: unknown) => fetch(`${server.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

beforeAll(async () => {
  const modelDir = join(tmp.dir, "model");
  const artifactsDir = join(tmp.dir, "artifacts");
  writeFixtureCheckpoint(modelDir);
  await prepareFixtureArtifacts(modelDir, artifactsDir);
  server = await startTestServer(tmp.dir, {
    tokenizerDir: modelDir,
    engine: { artifactsDir, threads: 1, context: 512 },
    defaults: { maxTokens: 4000, temperature: 0.8, topP: 0.95, allowForceTokens: true },
  });
  if (server.host.state !== "ok") throw new Error(`engine did not start: ${server.host.error}`);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
}, 120_000);
afterAll(async () => {
  await server?.stop(2000);
  tmp[Symbol.dispose]();
});

describe("/v1/completions", () => {
  test("greedy: a text_completion of max_tokens tokens; streamed gives the same text and usage", async () => {
    const req = { model: "tiny", prompt: "Once upon a time", max_tokens: 12, temperature: 0 };
    const a = await client.completions.create(req);
    expect(a.object).toBe("text_completion");
    expect(a.id).toMatch(/^cmpl-/);
    expect(a.choices[0]!.finish_reason).toBe("length");
    expect(a.usage!.completion_tokens).toBe(12);
    // no chat template: the prompt is its own tokens only
    const chat = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: req.prompt }], max_tokens: 1, temperature: 0 });
    expect(a.usage!.prompt_tokens).toBeLessThan(chat.usage!.prompt_tokens);
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined;
    let finish: string | null | undefined;
    for await (const c of await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } })) {
      text += c.choices[0]?.text ?? "";
      finish = c.choices[0]?.finish_reason ?? finish;
      usage = c.usage ?? usage;
    }
    expect(text).toBe(a.choices[0]!.text);
    expect(finish).toBe("length");
    expect(usage).toMatchObject({ completion_tokens: 12, prompt_tokens: a.usage!.prompt_tokens });
  });

  test("max_tokens defaults to 16, as OpenAI's; a prompt of token ids is taken as it is", async () => {
    const a = await client.completions.create({ model: "tiny", prompt: "Hello", temperature: 0 });
    expect(a.usage!.completion_tokens).toBeLessThanOrEqual(16);
    const ids = await client.completions.create({ model: "tiny", prompt: [1, 2, 3, 4, 5], max_tokens: 2, temperature: 0 });
    expect(ids.usage!.prompt_tokens).toBe(5);
  });

  test("stop strings end the text before them; echo: false by default, echo: true puts the prompt first", async () => {
    const r = await post({ model: "tiny", prompt: "q", stop: ["four. E"], force_text: "The answer is four. END", max_tokens: 64 });
    const body = (await r.json()) as any;
    expect(body.choices[0]).toMatchObject({ text: "The answer is ", finish_reason: "stop" });
    const echoed = (await (await post({ model: "tiny", prompt: "q: ", echo: true, force_text: "yes", max_tokens: 64 })).json()) as any;
    expect(echoed.choices[0].text).toBe("q: yes");
  });

  test("SSE frames end with [DONE]", async () => {
    const r = await post({ model: "tiny", prompt: "Hi", max_tokens: 3, stream: true, temperature: 0 });
    expect(r.headers.get("content-type")).toContain("text/event-stream");
    const frames = parseSseFrames(await r.text());
    expect(frames.at(-1)!.data).toBe("[DONE]");
    for (const f of frames.slice(0, -1)) expect(JSON.parse(f.data).object).toBe("text_completion");
  });

  test("errors: missing prompt, several prompts, and a prompt longer than the context (tokens sent and allowed)", async () => {
    const none = await post({ model: "tiny" });
    expect(none.status).toBe(400);
    expect(((await none.json()) as any).error).toMatchObject({ param: "prompt" });
    const many = await post({ model: "tiny", prompt: ["a", "b"] });
    expect(many.status).toBe(400);
    const long = await post({ model: "tiny", prompt: Array.from({ length: 600 }, (_, i) => i % 500) });
    expect(long.status).toBe(400);
    const err = ((await long.json()) as any).error;
    expect(err.code).toBe("context_length_exceeded");
    expect(err.message).toContain("the prompt is 600 tokens; this model's context allows 512");
  });
});
