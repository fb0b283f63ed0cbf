// Constrained decoding end to end: the demo model (random weights, the real Qwen tokenizer), the real engine and
// server. Random-weight output only ever matches a schema because the mask enforces it token by token.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import Ajv from "ajv";
import OpenAI from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { join } from "pathe";
import { z } from "zod";
import { extractWeights } from "../../lib/model/extract.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { bundledQwenTokenizerDir, writeTestModel } from "../../lib/model/test-model.ts";
import { loadModelContext, type RunningServer } from "../../lib/server/app.ts";
import { ensureEngineBuilt } from "./_real-model.ts";
import { createTempDir, startTestServer } from "./_server-fixture.ts";

setDefaultTimeout(120_000);

const tmp = createTempDir("flashchat-structured-");
let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  const modelDir = join(tmp.dir, "model");
  const artifactsDir = join(tmp.dir, "artifacts");
  await ensureEngineBuilt();
  await writeTestModel({ dims: "demo", outDir: modelDir, seed: 7, tokenizerDir: bundledQwenTokenizerDir(), onProgress: () => {} });
  await extractWeights({ checkpointDir: modelDir, outDir: artifactsDir });
  await repackExperts({ checkpointDir: modelDir, outDir: artifactsDir });
  server = await startTestServer(tmp.dir, {
    tokenizerDir: modelDir,
    engine: { artifactsDir, threads: 1, context: 4096 },
    // seed 0 for requests without one: the replies (and how long they take) are the same every run
    defaults: { maxTokens: 1500, temperature: 1, topP: 1, seed: 0, allowForceTokens: true },
  });
  if (server.host.state !== "ok") throw new Error(`engine did not start: ${server.host.error}`);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
}, 300_000);
afterAll(async () => {
  await server?.stop(2000);
  tmp[Symbol.dispose]();
});

/** mulberry32: a small seeded RNG, so the schemas are the same every run. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Schema = Record<string, unknown>;
function randomSchema(r: () => number, depth: number): Schema {
  const pick = Math.floor(r() * (depth > 0 ? 7 : 5));
  if (pick === 0) return { type: "string", maxLength: 12 };
  if (pick === 1) {
    const lo = Math.floor(r() * 100) - 50;
    return { type: "integer", minimum: lo, maximum: lo + Math.floor(r() * 100) };
  }
  if (pick === 2) return { type: "number", minimum: 0, maximum: 1 + Math.floor(r() * 1000) };
  if (pick === 3) return { enum: ["red", "green", "blue", "amber"].slice(0, 2 + Math.floor(r() * 3)) };
  if (pick === 4) return { type: "boolean" };
  if (pick === 5) return { type: "array", items: randomSchema(r, depth - 1), minItems: 1, maxItems: 3 };
  return randomObject(r, depth - 1);
}
function randomObject(r: () => number, depth: number): Schema {
  const n = 1 + Math.floor(r() * 4);
  const properties: Record<string, Schema> = {};
  const required: string[] = [];
  for (let i = 0; i < n; i++) {
    const key = `k${i}_${Math.floor(r() * 1000)}`;
    properties[key] = randomSchema(r, depth);
    if (r() < 0.6) required.push(key);
  }
  return { type: "object", properties, required, additionalProperties: false };
}

const ajv = new Ajv({ strict: false });

describe("structured output on the demo model", () => {
  test("20 random JSON schemas: every reply parses and validates", async () => {
    const r = rng(12);
    for (let i = 0; i < 20; i++) {
      const schema = randomObject(r, 2);
      const res = await client.chat.completions.create({
        model: "tiny",
        messages: [{ role: "user", content: "Fill in the form." }],
        response_format: { type: "json_schema", json_schema: { name: `s${i}`, schema, strict: i % 2 === 0 } },
        seed: i,
      });
      const text = res.choices[0]!.message.content ?? "";
      expect(res.choices[0]!.finish_reason).toBe("stop");
      const value = JSON.parse(text);
      const ok = ajv.validate(schema, value);
      if (!ok) throw new Error(`schema ${i}: ${JSON.stringify(schema)}\noutput: ${text}\n${ajv.errorsText()}`);
    }
  });

  test("json_object: every reply that ends is a JSON object; free text is not", async () => {
    // nothing bounds a json_object string, and random weights may write one until max_tokens (on the demo model
    // all three are cut so): a cut reply still starts as an object, a finished one parses
    for (let seed = 0; seed < 3; seed++) {
      const res = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "JSON please" }], response_format: { type: "json_object" }, seed, max_tokens: 60 });
      expect(res.choices[0]!.message.content!.startsWith("{")).toBe(true);
      if (res.choices[0]!.finish_reason !== "stop") continue;
      const v = JSON.parse(res.choices[0]!.message.content ?? "");
      expect(typeof v === "object" && v !== null && !Array.isArray(v)).toBe(true);
    }
    // the same request unconstrained: random weights give random text (this is what the mask fixes)
    const free = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "JSON please" }], max_tokens: 30, seed: 3 });
    expect(() => JSON.parse(free.choices[0]!.message.content ?? "")).toThrow();
  });

  test("the openai package's parse() with a zod schema", async () => {
    const Event = z.object({ name: z.string().max(10), day: z.enum(["mon", "tue", "wed"]), guests: z.number().int().min(1).max(9) });
    const res = await client.chat.completions.parse({
      model: "tiny",
      messages: [{ role: "user", content: "Plan an event." }],
      response_format: zodResponseFormat(Event, "event"),
      seed: 5,
    });
    const parsed = res.choices[0]!.message.parsed!;
    expect(Event.parse(parsed)).toEqual(parsed);
  });

  test("text.format on the Responses API", async () => {
    const schema = { type: "object", properties: { ok: { type: "boolean" }, n: { type: "integer", minimum: 0, maximum: 9 } }, required: ["ok", "n"], additionalProperties: false };
    const res = await client.responses.create({ model: "tiny", input: "status?", text: { format: { type: "json_schema", name: "status", schema, strict: true } } });
    expect(ajv.validate(schema, JSON.parse(res.output_text))).toBe(true);
  });

  const tools = ["read_file", "write_file", "run_command"].map((name, i) => ({
    type: "function" as const,
    function: {
      name,
      description: `tool ${name}`,
      parameters: {
        type: "object",
        properties: i === 2 ? { command: { type: "string", maxLength: 20 } } : { path: { type: "string", maxLength: 20 }, ...(i === 1 ? { content: { type: "string", maxLength: 20 } } : {}) },
        required: i === 2 ? ["command"] : i === 1 ? ["path", "content"] : ["path"],
        additionalProperties: false,
      },
    },
  }));

  test("tool_choice required: always a valid call of one of the three tools", async () => {
    for (let seed = 0; seed < 5; seed++) {
      const res = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Do something." }], tools, tool_choice: "required", seed });
      const calls = res.choices[0]!.message.tool_calls ?? [];
      if (res.choices[0]!.finish_reason !== "tool_calls") throw new Error(`seed ${seed}: no tool call: ${JSON.stringify(res.choices[0])}`);
      expect(calls.length).toBe(1);
      const call = calls[0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
      const tool = tools.find((t) => t.function.name === call.function.name);
      expect(tool).toBeDefined();
      expect(ajv.validate(tool!.function.parameters, JSON.parse(call.function.arguments))).toBe(true);
    }
  });

  test("a named function is always that function", async () => {
    for (let seed = 0; seed < 3; seed++) {
      const res = await client.chat.completions.create({
        model: "tiny",
        messages: [{ role: "user", content: "Write it." }],
        tools,
        tool_choice: { type: "function", function: { name: "write_file" } },
        seed,
      });
      const call = res.choices[0]!.message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall | undefined;
      expect(call?.function.name).toBe("write_file");
      expect(ajv.validate(tools[1]!.function.parameters, JSON.parse(call!.function.arguments))).toBe(true);
    }
  });

  test("a schema the grammar engine cannot take is a 400 naming the part", async () => {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "tiny",
        messages: [{ role: "user", content: "x" }],
        response_format: { type: "json_schema", json_schema: { name: "bad", schema: { type: "object", properties: { a: { type: "string", pattern: "(?<=x)a" } } } } },
      }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string; param: string } };
    expect(body.error.param).toBe("response_format.schema");
    expect(body.error.message).toContain("Lookbehind");
  });

  test("a grammar is freed when its generate ends by length or is cancelled, not only when the JSON is complete", async () => {
    const model = await loadModelContext(join(tmp.dir, "model"));
    const engine = server.host.current();
    const so = await model.structuredOutput!(engine.ready.model.vocab_size);
    const tokens = model.tokenizer.encode("Give me JSON");
    for (const end of ["length", "cancelled"] as const) {
      const grammar = await so.grammarFor({ kind: "json_object" }, "response_format");
      expect(so.nLive).toBe(1);
      const abort = new AbortController();
      let reason = "";
      for await (const ev of engine.generate({ tokens, max_tokens: end === "length" ? 3 : 1000, stop_tokens: [], grammar }, abort.signal)) {
        if (ev.type === "token" && end === "cancelled") abort.abort();
        if (ev.type === "done") reason = ev.reason;
      }
      expect(reason).toBe(end);
      expect(so.nLive).toBe(0);
    }
  });
});
