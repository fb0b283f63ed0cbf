// End to end: the real engine binary on the fixture model (with the tiny 512-id tokenizer), the real server
// on 127.0.0.1:0, the official `openai` client. Tool calls run through the engine's force_tokens hook.
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import { join } from "pathe";
import type { RunningServer } from "../../lib/server/app.ts";
import { parseSseFrames } from "../../lib/server/sse.ts";
import { loadTokenizer } from "../../lib/server/tokenizer.ts";
import { prepareFixtureArtifacts, writeFixtureCheckpoint } from "./_real-model.ts";
import { createTempDir, startTestServer } from "./_server-fixture.ts";

// spawned processes and the engine are slow on a loaded machine
setDefaultTimeout(30_000);

const tmp = createTempDir("flashchat-e2e-");
let server: RunningServer;
let client: OpenAI;
const readJson = (r: Response): Promise<any> => r.json();
/** logit_bias that keeps the end-of-text tokens out: a reply that must run long (sampling at temperature 0.8 may
 *  otherwise end it early, and the tokens a seed gives depend on whether the prompt came from a cached prefix). */
const noEnd = (): Record<string, number> => {
  const added = JSON.parse(readFileSync(join(tmp.dir, "model", "tokenizer.json"), "utf8")).added_tokens as { id: number; content: string }[];
  return Object.fromEntries(added.filter((t) => t.content === "<|im_end|>" || t.content === "<|endoftext|>").map((t) => [String(t.id), -100]));
};
const logText = () => readFileSync(join(tmp.dir, "logs", "server.log"), "utf8");

beforeAll(async () => {
  const modelDir = join(tmp.dir, "model");
  const artifactsDir = join(tmp.dir, "artifacts");
  writeFixtureCheckpoint(modelDir);
  await prepareFixtureArtifacts(modelDir, artifactsDir);
  server = await startTestServer(tmp.dir, {
    tokenizerDir: modelDir,
    engine: { artifactsDir, threads: 1, context: 4096 },
    maxQueue: 1,
    defaults: { maxTokens: 4000, temperature: 0.8, topP: 0.95, allowForceTokens: true },
  });
  if (server.host.state !== "ok") throw new Error(`engine did not start: ${server.host.error}`);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
}, 120_000);
afterAll(async () => {
  await server?.stop(2000);
  tmp[Symbol.dispose]();
});

const user = (content: string) => [{ role: "user" as const, content }];

describe("real engine", () => {
  test("health reports the engine; models lists the id", async () => {
    const h = await readJson(await fetch(`${server.url}/health`));
    expect(h).toMatchObject({ status: "ok", model: "tiny", context_length: 4096, engine: { backend: "cpu", context: 4096 } });
    expect((await client.models.list()).data[0]!.id).toBe("tiny");
    // context_length, as other OpenAI-compatible servers report it
    const models = await readJson(await fetch(`${server.url}/v1/models`));
    expect(models.data[0]).toMatchObject({ id: "tiny", context_length: 4096 });
    expect(await readJson(await fetch(`${server.url}/v1/models/tiny`))).toMatchObject({ context_length: 4096 });
  });

  test("greedy: stream and non-stream give the same text and usage", async () => {
    const req = { model: "tiny", messages: user("Hello"), max_tokens: 24, temperature: 0 };
    const a = await client.chat.completions.create(req);
    expect(a.usage!.completion_tokens).toBe(24);
    expect(a.choices[0]!.finish_reason).toBe("length");
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const c of await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } })) {
      text += c.choices[0]?.delta.content ?? "";
      usage = c.usage ?? usage;
    }
    expect(text).toBe(a.choices[0]!.message.content!);
    expect(usage!.completion_tokens).toBe(24);
    expect(usage!.prompt_tokens).toBe(a.usage!.prompt_tokens);
    // random weights emit random bytes: the stream never carries a broken UTF-8 sequence mid-way
    expect(text.length).toBeGreaterThan(0);
  });

  test("health?stats=1 adds the engine's totals: experts read per token, page-cache hits, the kernel level", async () => {
    const plain = await readJson(await fetch(`${server.url}/health`));
    expect((plain.engine as Record<string, unknown>).stats).toBeUndefined();
    expect(plain.engine).toMatchObject({ backend: "cpu", kernels: expect.any(String), expert_io: expect.stringMatching(/^(pread|mmap|populate)$/) });
    const h = await readJson(await fetch(`${server.url}/health?stats=1`));
    const engine = h.engine as { dense_bytes: number; stats: Record<string, number> };
    expect(engine.dense_bytes).toBeGreaterThan(0);
    const s = engine.stats;
    // the greedy test above evaluated prompts and generated tokens: every token read experts
    expect(s.prefill_tokens! + s.decode_passes!).toBeGreaterThan(24);
    expect(s.expert_reads).toBeGreaterThanOrEqual(s.decode_passes!);
    expect(s.expert_bytes_cached).toBeGreaterThanOrEqual(0);
    expect(s.expert_bytes_cached).toBeLessThanOrEqual(s.expert_bytes!);
  });

  test("logprobs: one entry per generated token, log-probabilities <= 0, the greedy token's bytes", async () => {
    const r = await client.chat.completions.create({ model: "tiny", messages: user("Hello"), max_tokens: 12, temperature: 0, logprobs: true });
    const content = r.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(r.usage!.completion_tokens);
    for (const e of content) {
      expect(e.logprob).toBeLessThanOrEqual(0);
      expect(Array.isArray(e.bytes)).toBe(true);
    }
    // the bytes of all tokens are the reply's UTF-8 bytes
    const bytes = content.flatMap((e) => e.bytes!);
    expect(new TextDecoder().decode(new Uint8Array(bytes))).toBe(r.choices[0]!.message.content!);
  });

  // top_logprobs and logit_bias need the engine's protocol support (native/PROTOCOL.md documents it when it is there)
  const engineHasTopLogprobs = readFileSync(join(import.meta.dir, "..", "..", "native", "PROTOCOL.md"), "utf8").includes("top_logprobs");
  test.skipIf(!engineHasTopLogprobs)("top_logprobs: N alternatives, most likely first; greedy picks the first", async () => {
    const r = await client.chat.completions.create({ model: "tiny", messages: user("Hello"), max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3 });
    for (const e of r.choices[0]!.logprobs!.content!) {
      expect(e.top_logprobs).toHaveLength(3);
      const lps = e.top_logprobs.map((t) => t.logprob);
      expect([...lps].sort((a, b) => b - a)).toEqual(lps);
      expect(e.top_logprobs[0]!.bytes).toEqual(e.bytes);
      expect(Math.abs(e.top_logprobs[0]!.logprob - e.logprob)).toBeLessThan(1e-4);
    }
  });
  test.skipIf(!engineHasTopLogprobs)("logit_bias -100 on the greedy first token makes greedy pick the runner-up", async () => {
    const req = { model: "tiny", messages: user("Hello"), max_tokens: 1, temperature: 0, logprobs: true, top_logprobs: 2 };
    const a = await client.chat.completions.create(req);
    const [first, second] = a.choices[0]!.logprobs!.content![0]!.top_logprobs;
    const tok = await loadTokenizer(join(tmp.dir, "model"));
    const id = Array.from({ length: tok.vocabSize }, (_, i) => i).find((i) => JSON.stringify(tok.tokenBytes(i)) === JSON.stringify(first!.bytes))!;
    const b = await client.chat.completions.create({ ...req, logit_bias: { [String(id)]: -100 } });
    expect(b.choices[0]!.logprobs!.content![0]!.bytes).toEqual(second!.bytes);
  });

  test("seed: same seed same reply, another seed another reply", async () => {
    const req = { model: "tiny", messages: user("Tell me a story"), max_tokens: 32, temperature: 1, seed: 1234 };
    const a = (await client.chat.completions.create(req)).choices[0]!.message.content;
    const b = (await client.chat.completions.create(req)).choices[0]!.message.content;
    const c = (await client.chat.completions.create({ ...req, seed: 99 })).choices[0]!.message.content;
    expect(a).toBe(b);
    expect(c).not.toBe(a);
  });

  test("no seed: each request gets a random one, so the same prompt does not always get the same reply", async () => {
    const req = { model: "tiny", messages: user("Tell me a story"), max_tokens: 32, temperature: 1 };
    const replies = new Set<string>();
    for (let i = 0; i < 3; i++) replies.add((await client.chat.completions.create(req)).choices[0]!.message.content!);
    expect(replies.size).toBeGreaterThan(1);
  });

  test("stop strings across token boundaries", async () => {
    const r = await client.chat.completions.create({ model: "tiny", messages: user("q"), stop: ["four. E"], force_text: "The answer is four. END" } as never);
    expect(r.choices[0]!.message.content).toBe("The answer is ");
    expect(r.choices[0]!.finish_reason).toBe("stop");
  });

  test("prompt cache: the next turn reuses the previous prompt (cached_tokens)", async () => {
    const sys = { role: "system" as const, content: "You are a helpful assistant." };
    const first = await client.chat.completions.create({ model: "tiny", messages: [sys, ...user("What is the weather in Paris?")], max_tokens: 4, temperature: 0 });
    const second = await client.chat.completions.create({
      model: "tiny",
      messages: [sys, ...user("What is the weather in Paris?"), { role: "assistant", content: first.choices[0]!.message.content }, ...user("And tomorrow?")],
      max_tokens: 4,
      temperature: 0,
    });
    const cached = (second.usage as { prompt_tokens_details: { cached_tokens: number } }).prompt_tokens_details.cached_tokens;
    expect(cached).toBeGreaterThanOrEqual(first.usage!.prompt_tokens);
    expect(cached).toBeLessThan(second.usage!.prompt_tokens);
    expect(logText()).toMatch(new RegExp(`cached=${cached} `));
  });

  test("tool calls end to end through force_tokens, both forms, streamed", async () => {
    const tools = [{ type: "function" as const, function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } } } } }];
    const forced = '<think>\nI need the weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n<function=get_weather>\n<parameter=city>\nSão Paulo\n</parameter>\n<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>';
    const stream = await client.chat.completions.create({ model: "tiny", messages: user("weather?"), tools, stream: true, force_text: forced } as never);
    let content = "";
    let reasoning = "";
    const calls: { id?: string; name?: string; args: string }[] = [];
    let finish: string | null = null;
    for await (const chunk of stream as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>) {
      const d = chunk.choices[0]!.delta as OpenAI.ChatCompletionChunk.Choice.Delta & { reasoning_content?: string };
      content += d.content ?? "";
      reasoning += d.reasoning_content ?? "";
      for (const tc of d.tool_calls ?? []) {
        calls[tc.index] ??= { args: "" };
        calls[tc.index]!.id ??= tc.id;
        calls[tc.index]!.name ??= tc.function?.name;
        calls[tc.index]!.args += tc.function?.arguments ?? "";
      }
      finish = chunk.choices[0]!.finish_reason ?? finish;
    }
    expect(content).toBe("");
    expect(reasoning).toBe("I need the weather.");
    expect(finish).toBe("tool_calls");
    expect(calls.map((c) => [c.name, JSON.parse(c.args)])).toEqual([
      ["get_weather", { city: "Paris" }],
      ["get_weather", { city: "São Paulo", days: 2 }],
    ]);
  });

  test("responses API, streamed and not", async () => {
    const r = await client.responses.create({ model: "tiny", input: "Hello", max_output_tokens: 8, temperature: 0 });
    expect(r.usage!.output_tokens).toBe(8);
    const s = await fetch(`${server.url}/v1/responses`, { method: "POST", body: JSON.stringify({ input: "Hello", max_output_tokens: 8, temperature: 0, stream: true }) });
    const frames = parseSseFrames(await s.text());
    expect(frames[0]!.event).toBe("response.created");
    expect(frames.at(-1)!.event).toBe("response.incomplete");
    const text = frames.filter((f) => f.event === "response.output_text.delta").map((f) => JSON.parse(f.data).delta).join("");
    expect(text).toBe(r.output_text);
  });

  test("abort cancels the generation; the engine serves the next request", async () => {
    const ac = new AbortController();
    // seed 0: a reply on this fixture that runs long (a random seed may reach the end of text before the abort)
    const stream = await client.chat.completions.create({ model: "tiny", messages: user("long"), max_tokens: 3900, stream: true, seed: 0, logit_bias: noEnd() }, { signal: ac.signal });
    let n = 0;
    await (async () => {
      for await (const _ of stream) if (++n === 5) ac.abort();
    })().catch(() => {});
    for (let i = 0; i < 200 && !logText().includes("cancelled by the client"); i++) await Bun.sleep(10);
    const line = logText().split("\n").find((l) => l.includes("cancelled by the client"))!;
    expect(Number(/completion=(\d+)/.exec(line)![1])).toBeLessThan(3900);
    const r = await client.chat.completions.create({ model: "tiny", messages: user("x"), max_tokens: 3, seed: 0 });
    expect(r.usage!.completion_tokens).toBe(3);
  });

  test("queue overflow: 429 with Retry-After while one runs and one waits", async () => {
    expect(Object.keys(noEnd()).length).toBe(2);
    const long = JSON.stringify({ messages: user("x"), max_tokens: 3900, seed: 0, logit_bias: noEnd() }); // runs long
    const post = () => fetch(`${server.url}/v1/chat/completions`, { method: "POST", body: long });
    // wait on the server's own queue state (not on sleeps): prompts are prepared in a worker first
    const queueIs = async (busy: boolean, waiting: number) => {
      for (let i = 0; i < 1000; i++) {
        const q = (await readJson(await fetch(`${server.url}/health`))).queue as { busy: boolean; waiting: number } | undefined;
        if (q && q.busy === busy && q.waiting === waiting) return;
        await Bun.sleep(10);
      }
      throw new Error(`the queue never reached busy=${busy} waiting=${waiting}: ${JSON.stringify((await readJson(await fetch(`${server.url}/health`))).queue)}`);
    };
    const first = post();
    await queueIs(true, 0);
    const second = post();
    await queueIs(true, 1);
    const third = await post();
    expect(third.status).toBe(429);
    expect(Number(third.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
  });

  test("engine killed mid-stream: 503 for the stream, restart, the next request works", async () => {
    const before = await readJson(await fetch(`${server.url}/health`));
    const stream = await client.chat.completions.create({ model: "tiny", messages: user("x"), max_tokens: 3900, stream: true, seed: 0, logit_bias: noEnd() }); // runs long
    let n = 0;
    const err = await (async () => {
      for await (const _ of stream) if (++n === 3) process.kill(before.engine.pid, "SIGKILL");
    })().catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(String(err.message)).toContain("engine");
    for (let i = 0; i < 500 && server.host.state !== "ok"; i++) await Bun.sleep(10);
    const after = await readJson(await fetch(`${server.url}/health`));
    expect(after.status).toBe("ok");
    expect(after.engine.pid).not.toBe(before.engine.pid);
    const r = await client.chat.completions.create({ model: "tiny", messages: user("x"), max_tokens: 3, seed: 0 });
    expect(r.usage!.completion_tokens).toBe(3);
  });
});
