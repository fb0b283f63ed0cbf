// Prefix reuse across an agent's turns: the demo model (the real Qwen tokenizer and chat template), the real engine
// and server. An agent resends the whole conversation each turn; turn 2 must evaluate only what is new, in memory and
// after a restart with the prompt cache persisted. The model's replies are scripted with force_text (test hook).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "pathe";
import { extractWeights } from "../../lib/model/extract.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { bundledQwenTokenizerDir, writeTestModel } from "../../lib/model/test-model.ts";
import type { RunningServer } from "../../lib/server/app.ts";
import { ensureEngineBuilt } from "./_real-model.ts";
import { createTempDir, startTestServer } from "./_server-fixture.ts";

setDefaultTimeout(300_000);

const tmp = createTempDir("flashchat-agent-turns-");
const modelDir = join(tmp.dir, "model");
const artifactsDir = join(tmp.dir, "artifacts");
const snapshotFile = join(tmp.dir, "prompt-cache", "demo.snapshots");
let server: RunningServer;

const start = () =>
  startTestServer(tmp.dir, {
    tokenizerDir: modelDir,
    engine: { artifactsDir, threads: 1, context: 16384 },
    defaults: { maxTokens: 64, temperature: 0, topP: 1, allowForceTokens: true },
    snapshotFile,
  });

beforeAll(async () => {
  await ensureEngineBuilt();
  await writeTestModel({ dims: "demo", outDir: modelDir, seed: 3, tokenizerDir: bundledQwenTokenizerDir(), onProgress: () => {} });
  await extractWeights({ checkpointDir: modelDir, outDir: artifactsDir });
  await repackExperts({ checkpointDir: modelDir, outDir: artifactsDir });
  server = await start();
  if (server.host.state !== "ok") throw new Error(`engine did not start: ${server.host.error}`);
}, 600_000);
afterAll(async () => {
  await server?.stop(2000);
  tmp[Symbol.dispose]();
});

/** Deterministic filler prose: `nWords` words from a seeded generator. */
function prose(seed: number, nWords: number): string {
  const words = ["the", "agent", "reads", "files", "and", "edits", "code", "with", "care", "tests", "run", "after", "each", "change", "commit", "small", "steps", "never", "guess", "paths", "check", "first", "then", "write"];
  let a = seed >>> 0;
  const out: string[] = [];
  for (let i = 0; i < nWords; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out.push(words[((t ^ (t >>> 14)) >>> 0) % words.length]!);
    if (i % 12 === 11) out.push(".\n");
  }
  return out.join(" ");
}

// an OpenCode-sized first request: a long system prompt, tools with schemas, a user message with pasted context
const tools = ["read", "write", "bash", "grep"].map((name) => ({
  type: "function" as const,
  function: {
    name,
    description: `${name}: ${prose(name.length, 60)}`,
    parameters: { type: "object", properties: { path: { type: "string", description: "the file" }, text: { type: "string" } }, required: ["path"] },
  },
}));
const system = { role: "system", content: prose(1, 6500) };
const user1 = { role: "user", content: `Fix the bug in this file:\n${prose(2, 400)}` };

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}
async function chat(body: Record<string, unknown>): Promise<{ message: any; usage: Usage }> {
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", tools, ...body }),
  });
  const json = (await res.json()) as any;
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${JSON.stringify(json)}`);
  return { message: json.choices[0].message, usage: json.usage };
}

describe("prefix reuse across an agent's turns (demo model, 8k-token conversation)", () => {
  test("turn 2 after a tool call and its result evaluates only the new tokens", async () => {
    // turn 1: the model thinks, then calls a tool (its thinking is not sent back in the history)
    const messages: unknown[] = [system, user1];
    const t1 = await chat({ messages, force_text: '<think>\nI should read it first.\n</think>\n\n<tool_call>\n{"name": "read", "arguments": {"path": "src/a.ts"}}\n</tool_call>' });
    expect(t1.usage.prompt_tokens).toBeGreaterThan(8000);
    expect(t1.message.tool_calls).toHaveLength(1);
    const call = t1.message.tool_calls[0];
    // turn 2: what an OpenAI client sends back: the assistant's tool call, the tool's result
    messages.push({ role: "assistant", content: t1.message.content, tool_calls: t1.message.tool_calls });
    messages.push({ role: "tool", tool_call_id: call.id, content: prose(3, 150) });
    const t2 = await chat({ messages, force_text: "Done." });
    const cached = t2.usage.prompt_tokens_details.cached_tokens;
    // all of turn 1's prompt is reused but the generation prompt at most (<|im_start|>assistant\n: 3 tokens) ...
    expect(t1.usage.prompt_tokens - cached).toBeLessThanOrEqual(3);
    // ... and what is evaluated is the call + the result + the next generation prompt: a few hundred tokens of 8k
    expect(t2.usage.prompt_tokens - cached).toBeLessThan(300);
    expect(t2.usage.prompt_tokens - cached).toBeGreaterThan(150);
  });

  test("turn 2 after a plain reply with thinking off (the <think></think> generation prompt is not history)", async () => {
    const kwargs = { chat_template_kwargs: { enable_thinking: false } };
    const messages: unknown[] = [system, { role: "user", content: `Explain this file:\n${prose(4, 400)}` }];
    const t1 = await chat({ messages, ...kwargs, force_text: "\nIt is a parser." });
    messages.push({ role: "assistant", content: t1.message.content });
    messages.push({ role: "user", content: "And what does the second function do?" });
    const t2 = await chat({ messages, ...kwargs, force_text: "It prints." });
    const cached = t2.usage.prompt_tokens_details.cached_tokens;
    // turn 1's prompt ended in <|im_start|>assistant\n<think>\n\n</think>\n\n (7 tokens); all before it is reused
    expect(t1.usage.prompt_tokens - cached).toBeLessThanOrEqual(7);
    expect(t2.usage.prompt_tokens - cached).toBeLessThan(60);
  });

  test("with the prompt cache persisted, turn 2 reuses turn 1 after a server restart", async () => {
    const messages: unknown[] = [system, { role: "user", content: `Review this diff:\n${prose(5, 400)}` }];
    const t1 = await chat({ messages, force_text: '<tool_call>\n{"name": "grep", "arguments": {"path": "lib", "text": "TODO"}}\n</tool_call>' });
    await server.stop(2000);
    expect(existsSync(snapshotFile)).toBe(true);
    server = await start();
    expect(server.host.state).toBe("ok");
    const call = t1.message.tool_calls[0];
    messages.push({ role: "assistant", content: t1.message.content, tool_calls: t1.message.tool_calls });
    messages.push({ role: "tool", tool_call_id: call.id, content: "lib/a.ts:3: TODO remove" });
    const t2 = await chat({ messages, force_text: "Found one." });
    const cached = t2.usage.prompt_tokens_details.cached_tokens;
    expect(t1.usage.prompt_tokens - cached).toBeLessThanOrEqual(3);
    expect(t2.usage.prompt_tokens - cached).toBeLessThan(100);
  });
});
