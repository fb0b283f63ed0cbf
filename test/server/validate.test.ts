import { describe, expect, test } from "bun:test";
import { ApiError } from "../../lib/server/errors.ts";
import { validateChatRequest, validateResponsesRequest } from "../../lib/server/validate.ts";

function fails(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    return e as ApiError;
  }
  throw new Error("expected a 400");
}

const user = [{ role: "user", content: "hi" }];

describe("chat request validation", () => {
  test("a full request is normalized", () => {
    const r = validateChatRequest({
      model: "m",
      messages: [
        { role: "developer", content: [{ type: "text", text: "sys" }] },
        { role: "user", content: "q" },
        { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: '{"a":1}' } }] },
        { role: "tool", tool_call_id: "c1", content: "r" },
      ],
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
      tool_choice: { type: "function", function: { name: "f" } },
      max_completion_tokens: 9,
      max_tokens: 100,
      temperature: 0,
      top_k: 0,
      seed: 3,
      stop: "END",
      stream: true,
      stream_options: { include_usage: true },
      chat_template_kwargs: { enable_thinking: false },
      reasoning_format: "inline",
    });
    expect(r.messages).toEqual([
      { role: "system", content: "sys" },
      { role: "user", content: "q" },
      { role: "assistant", content: "", tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: { a: 1 } } }] },
      { role: "tool", content: "r", tool_call_id: "c1" },
    ]);
    expect(r.toolChoice).toEqual({ name: "f" });
    expect(r.maxTokens).toBe(9);
    expect(r.sampling).toEqual({ temperature: 0, seed: 3 });
    expect(r.stop).toEqual(["END"]);
    expect([r.stream, r.includeUsage, r.enableThinking, r.reasoningFormat]).toEqual([true, true, false, "inline"]);
  });

  test("thinking switches", () => {
    expect(validateChatRequest({ messages: user }).enableThinking).toBeUndefined();
    expect(validateChatRequest({ messages: user, reasoning: false }).enableThinking).toBe(false);
    expect(validateChatRequest({ messages: user, reasoning: true }).enableThinking).toBe(true);
    expect(validateChatRequest({ messages: user, reasoning_effort: "none" }).enableThinking).toBe(false);
    expect(validateChatRequest({ messages: user, reasoning_effort: "high" }).enableThinking).toBe(true);
  });

  test("each mistake is a 400 naming the field", () => {
    const cases: [unknown, string | null][] = [
      [[], null],
      [{}, "messages"],
      [{ messages: "hi" }, "messages"],
      [{ messages: [] }, "messages"],
      [{ messages: [{ role: "wizard", content: "x" }] }, "messages[0].role"],
      [{ messages: [{ role: "user" }] }, "messages[0].content"],
      [{ messages: [{ role: "user", content: [{ type: "image_url" }] }] }, "messages[0].content[0].type"],
      [{ messages: user, model: 5 }, "model"],
      [{ messages: user, temperature: "hot" }, "temperature"],
      [{ messages: user, temperature: 3 }, "temperature"],
      [{ messages: user, max_tokens: 0 }, "max_tokens"],
      [{ messages: user, max_tokens: 1.5 }, "max_tokens"],
      [{ messages: user, stop: [1] }, "stop"],
      [{ messages: user, stream: "yes" }, "stream"],
      [{ messages: user, n: 2 }, "n"],
      [{ messages: user, tools: [{ type: "function", function: {} }] }, "tools[0].function.name"],
      [{ messages: user, tools: [{ type: "retrieval" }] }, "tools[0].type"],
      [{ messages: user, tool_choice: { type: "function", function: { name: "nope" } } }, "tool_choice"],
      [{ messages: user, reasoning_format: "loud" }, "reasoning_format"],
      [{ messages: [{ role: "assistant", content: "", tool_calls: [{ function: { arguments: "{}" } }] }] }, "messages[0].tool_calls[0].function.name"],
    ];
    for (const [body, param] of cases) {
      const e = fails(() => validateChatRequest(body));
      expect(e.status).toBe(400);
      expect(e.param).toBe(param);
      if (param) expect(e.message).toContain(param);
    }
  });
});

describe("responses request validation", () => {
  test("text input with instructions", () => {
    const r = validateResponsesRequest({ model: "m", input: "hi", instructions: "be nice", max_output_tokens: 5 });
    expect(r.messages).toEqual([{ role: "system", content: "be nice" }, { role: "user", content: "hi" }]);
    expect(r.maxTokens).toBe(5);
  });

  test("items: messages, function calls and their outputs; flattened tools", () => {
    const r = validateResponsesRequest({
      input: [
        { role: "user", content: [{ type: "input_text", text: "weather?" }] },
        { type: "function_call", call_id: "c1", name: "w", arguments: '{"city":"x"}' },
        { type: "function_call", call_id: "c2", name: "w", arguments: '{"city":"y"}' },
        { type: "function_call_output", call_id: "c1", output: "sunny" },
        { type: "function_call_output", call_id: "c2", output: "rain" },
      ],
      tools: [{ type: "function", name: "w", parameters: { type: "object" } }],
    });
    expect(r.messages).toEqual([
      { role: "user", content: "weather?" },
      { role: "assistant", content: "", tool_calls: [
        { id: "c1", type: "function", function: { name: "w", arguments: { city: "x" } } },
        { id: "c2", type: "function", function: { name: "w", arguments: { city: "y" } } },
      ] },
      { role: "tool", content: "sunny", tool_call_id: "c1" },
      { role: "tool", content: "rain", tool_call_id: "c2" },
    ]);
    expect(r.tools).toEqual([{ type: "function", function: { name: "w", parameters: { type: "object" } } }]);
  });

  test("mistakes name the field", () => {
    expect(fails(() => validateResponsesRequest({})).param).toBe("input");
    expect(fails(() => validateResponsesRequest({ input: [{ type: "web_search" }] })).param).toBe("input[0].type");
    expect(fails(() => validateResponsesRequest({ input: "x", previous_response_id: "r1" })).param).toBe("previous_response_id");
  });
});
