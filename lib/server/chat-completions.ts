// POST /v1/chat/completions: generation events -> OpenAI chat.completion (JSON) or chat.completion.chunk (SSE).
import type { FinishReason, GenerationEvent, Usage } from "./generate.ts";
import { renderSseData, SSE_DONE } from "./sse.ts";

export const createCompletionId = () => `chatcmpl-${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;

export function renderChatUsage(u: Usage) {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
    completion_tokens_details: { reasoning_tokens: u.reasoningTokens },
  };
}

interface ToolCallOut {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

const apiFinish = (r: FinishReason) => (r === "cancelled" ? "stop" : r);

/** Collect a whole generation into a chat.completion object. */
export async function collectChatCompletion(events: AsyncIterable<GenerationEvent>, id: string, model: string) {
  let content = "";
  let reasoning = "";
  const toolCalls: ToolCallOut[] = [];
  for await (const e of events) {
    if (e.type === "content") content += e.text;
    else if (e.type === "reasoning") reasoning += e.text;
    else if (e.type === "tool_call") toolCalls.push({ id: e.id, type: "function", function: { name: e.name, arguments: e.arguments } });
    else if (e.type === "done") {
      const message: Record<string, unknown> = { role: "assistant", content: content || (toolCalls.length > 0 ? null : "") };
      if (reasoning) message.reasoning_content = reasoning;
      if (toolCalls.length > 0) message.tool_calls = toolCalls;
      return {
        body: {
          id,
          object: "chat.completion",
          created: Math.floor(Date.now() / 1000),
          model,
          system_fingerprint: null,
          choices: [{ index: 0, message, logprobs: null, finish_reason: apiFinish(e.finishReason) }],
          usage: renderChatUsage(e.usage),
        },
        done: e,
      };
    }
  }
  throw new Error("generation ended without a done event");
}

/** Frames of a streamed chat completion, one call per generation event. */
export function createChatChunker(id: string, model: string, includeUsage: boolean) {
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
    renderSseData({ id, object: "chat.completion.chunk", created, model, system_fingerprint: null, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  return {
    start: () => chunk({ role: "assistant", content: "" }),
    event(e: GenerationEvent): string {
      switch (e.type) {
        case "content":
          return chunk({ content: e.text });
        case "reasoning":
          return chunk({ reasoning_content: e.text });
        case "tool_call":
          return chunk({ tool_calls: [{ index: e.index, id: e.id, type: "function", function: { name: e.name, arguments: e.arguments } }] });
        case "done": {
          let out = chunk({}, apiFinish(e.finishReason));
          if (includeUsage)
            out += renderSseData({ id, object: "chat.completion.chunk", created, model, system_fingerprint: null, choices: [], usage: renderChatUsage(e.usage) });
          return out + SSE_DONE;
        }
        default:
          return "";
      }
    },
  };
}
