// POST /v1/chat/completions: generation events -> OpenAI chat.completion (JSON) or chat.completion.chunk (SSE).
import type { FinishReason, GenerationEvent, LogprobEntry, Usage } from "./generate.ts";
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

/** choices[].logprobs: OpenAI's `content` list, plus the reasoning tokens apart (when reasoning is separate). */
function renderLogprobs(content: LogprobEntry[], reasoning: LogprobEntry[]) {
  const out: Record<string, unknown> = { content, refusal: null };
  if (reasoning.length > 0) out.reasoning_content = reasoning;
  return out;
}

/** Collect a whole generation into a chat.completion object (`logprobs`: the request asked for them). */
export async function collectChatCompletion(events: AsyncIterable<GenerationEvent>, id: string, model: string, logprobs = false) {
  const lpContent: LogprobEntry[] = [];
  const lpReasoning: LogprobEntry[] = [];
  let content = "";
  let reasoning = "";
  const toolCalls: ToolCallOut[] = [];
  for await (const e of events) {
    if (e.type === "content") content += e.text;
    else if (e.type === "reasoning") reasoning += e.text;
    else if (e.type === "logprobs") (e.channel === "content" ? lpContent : lpReasoning).push(e.entry);
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
          choices: [{ index: 0, message, logprobs: logprobs ? renderLogprobs(lpContent, lpReasoning) : null, finish_reason: apiFinish(e.finishReason) }],
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
  // token logprobs ride on the next chunk that carries text (or the finish chunk)
  const pending: LogprobEntry[] = [];
  const pendingReasoning: LogprobEntry[] = [];
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) => {
    let logprobs: Record<string, unknown> | null = null;
    if (pending.length > 0 || pendingReasoning.length > 0) {
      logprobs = renderLogprobs(pending.splice(0), pendingReasoning.splice(0));
    }
    return renderSseData({ id, object: "chat.completion.chunk", created, model, system_fingerprint: null, choices: [{ index: 0, delta, logprobs, finish_reason: finish }] });
  };
  return {
    start: () => chunk({ role: "assistant", content: "" }),
    event(e: GenerationEvent): string {
      switch (e.type) {
        case "logprobs":
          (e.channel === "content" ? pending : pendingReasoning).push(e.entry);
          return "";
        case "content":
          return chunk({ content: e.text });
        case "reasoning":
          return chunk({ reasoning_content: e.text });
        case "tool_call":
          return chunk({ tool_calls: [{ index: e.index, id: e.id, type: "function", function: { name: e.name, arguments: e.arguments } }] });
        case "done": {
          let out = pending.length > 0 || pendingReasoning.length > 0 ? chunk({}) : "";
          out += chunk({}, apiFinish(e.finishReason));
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
