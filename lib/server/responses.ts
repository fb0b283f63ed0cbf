// POST /v1/responses: generation events -> a Response object (JSON) or the responses streaming events (SSE).
import type { GenerationEvent, Usage } from "./generate.ts";
import { renderSseEvent } from "./sse.ts";

const rid = (prefix: string) => `${prefix}_${crypto.randomUUID().replaceAll("-", "")}`;

type Item = Record<string, unknown> & { type: string; id: string };

export function renderResponsesUsage(u: Usage) {
  return {
    input_tokens: u.promptTokens,
    input_tokens_details: { cached_tokens: u.cachedTokens },
    output_tokens: u.completionTokens,
    output_tokens_details: { reasoning_tokens: u.reasoningTokens },
    total_tokens: u.promptTokens + u.completionTokens,
  };
}

/** Builds the Response object from generation events; with `emit`, also writes the streaming events. */
export function createResponseBuilder(model: string, emit?: (frame: string) => void) {
  const id = rid("resp");
  const createdAt = Math.floor(Date.now() / 1000);
  const output: Item[] = [];
  let seq = 0;
  let open: { item: Item; kind: "message" | "reasoning"; text: string } | undefined;
  const send = (type: string, data: Record<string, unknown>) => emit?.(renderSseEvent(type, { type, sequence_number: seq++, ...data }));
  const response = (status: string, extra: Record<string, unknown> = {}) => ({
    id,
    object: "response",
    created_at: createdAt,
    status,
    model,
    output,
    output_text: output
      .filter((i) => i.type === "message")
      .map((i) => ((i.content as { text: string }[])[0]?.text ?? ""))
      .join(""),
    error: null,
    incomplete_details: null,
    parallel_tool_calls: true,
    tool_choice: "auto",
    tools: [],
    ...extra,
  });

  const closeOpen = () => {
    if (!open) return;
    const { item, kind, text } = open;
    const outputIndex = output.indexOf(item);
    if (kind === "message") {
      const part = { type: "output_text", text, annotations: [] };
      item.content = [part];
      item.status = "completed";
      send("response.output_text.done", { item_id: item.id, output_index: outputIndex, content_index: 0, text });
      send("response.content_part.done", { item_id: item.id, output_index: outputIndex, content_index: 0, part });
    } else {
      item.content = [{ type: "reasoning_text", text }];
      send("response.reasoning_text.done", { item_id: item.id, output_index: outputIndex, content_index: 0, text });
    }
    send("response.output_item.done", { output_index: outputIndex, item });
    open = undefined;
  };

  const append = (kind: "message" | "reasoning", delta: string) => {
    if (open?.kind !== kind) {
      closeOpen();
      const item: Item =
        kind === "message"
          ? { type: "message", id: rid("msg"), status: "in_progress", role: "assistant", content: [] }
          : { type: "reasoning", id: rid("rs"), summary: [], content: [] };
      output.push(item);
      open = { item, kind, text: "" };
      send("response.output_item.added", { output_index: output.length - 1, item });
      if (kind === "message")
        send("response.content_part.added", { item_id: item.id, output_index: output.length - 1, content_index: 0, part: { type: "output_text", text: "", annotations: [] } });
    }
    open!.text += delta;
    const ev = kind === "message" ? "response.output_text.delta" : "response.reasoning_text.delta";
    send(ev, { item_id: open!.item.id, output_index: output.length - 1, content_index: 0, delta });
  };

  return {
    id,
    start() {
      send("response.created", { response: response("in_progress") });
      send("response.in_progress", { response: response("in_progress") });
    },
    event(e: GenerationEvent) {
      if (e.type === "content") append("message", e.text);
      else if (e.type === "reasoning") append("reasoning", e.text);
      else if (e.type === "tool_call") {
        closeOpen();
        const item: Item = { type: "function_call", id: rid("fc"), call_id: e.id, name: e.name, arguments: "", status: "in_progress" };
        output.push(item);
        const outputIndex = output.length - 1;
        send("response.output_item.added", { output_index: outputIndex, item: { ...item } });
        send("response.function_call_arguments.delta", { item_id: item.id, output_index: outputIndex, delta: e.arguments });
        send("response.function_call_arguments.done", { item_id: item.id, output_index: outputIndex, arguments: e.arguments });
        item.arguments = e.arguments;
        item.status = "completed";
        send("response.output_item.done", { output_index: outputIndex, item });
      } else if (e.type === "done") {
        closeOpen();
        const incomplete = e.finishReason === "length";
        const final = response(incomplete ? "incomplete" : "completed", {
          usage: renderResponsesUsage(e.usage),
          incomplete_details: incomplete ? { reason: "max_output_tokens" } : null,
        });
        send(incomplete ? "response.incomplete" : "response.completed", { response: final });
        return final;
      }
      return undefined;
    },
  };
}
