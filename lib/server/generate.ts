// One request through the engine: render the chat template, tokenize, pick prompt-cache snapshot points,
// stream tokens back through detokenizer -> stop strings -> reasoning / tool-call parser.
import { createRandomSeed } from "../seed.ts";
import { type Engine, EngineError, type GenerateRequest, type TokenGrammar } from "../engine/types.ts";
import type { ChatTemplate, RenderOptions, TemplateMessage } from "./chat-template.ts";
import { createDetokenizer } from "./detokenizer.ts";
import { ApiError, badRequest } from "./errors.ts";
import { guardContent } from "./prompt-tokens.ts";
import { createOutputParser, type OutputEvent, promptOpensReasoning } from "./output-parser.ts";
import { createStopMatcher } from "./stop-strings.ts";
import { type Constraint, constraintOf, type StructuredOutput } from "./structured-output.ts";
import type { ModelTokenizer } from "./tokenizer.ts";
import type { ToolSpec } from "./tool-calls.ts";
import type { GenerationRequest, ReasoningFormat } from "./validate.ts";

export interface ModelContext {
  tokenizer: ModelTokenizer;
  template: ChatTemplate;
  /** The grammar compiler for constrained decoding (built on first use), given the engine's vocabulary size. */
  structuredOutput?: (modelVocabSize: number) => Promise<StructuredOutput>;
}

export interface GenerationDefaults {
  /** Most tokens generated per reply (MAX_TOKENS). */
  maxTokens: number;
  temperature: number;
  topP: number;
  /** Seed for requests without one; undefined (the default): a new random seed per request. */
  seed?: number;
  reasoningFormat: ReasoningFormat;
  /** Honour force_text / force_tokens in requests (test hook). */
  allowForceTokens: boolean;
}

export type FinishReason = "stop" | "length" | "tool_calls" | "cancelled";

export interface Usage {
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  reasoningTokens: number;
}

/** One generated token in OpenAI's logprobs shape. */
export interface LogprobEntry {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export type GenerationEvent =
  | { type: "prompt"; promptTokens: number; cachedTokens: number }
  | OutputEvent
  /** With `logprobs`: the token just generated (reasoning tokens apart from content ones). */
  | { type: "logprobs"; channel: "content" | "reasoning"; entry: LogprobEntry }
  | { type: "done"; finishReason: FinishReason; usage: Usage; timings: { prefillMs: number; decodeMs: number; ttftMs: number; totalMs: number } };

/** A rendered, tokenized request, ready for the engine. */
export interface PreparedPrompt {
  text: string;
  tokens: number[];
  /** Prompt lengths worth a snapshot (system prompt + tools). */
  snapshotAt: number[];
  maxTokens: number;
  startInReasoning: boolean;
  /** What the output must follow (response_format, tool_choice); rendered with thinking off. */
  constraint?: Constraint;
  /** The compiled constraint for this request (set by the caller before the run). */
  grammar?: TokenGrammar;
}

/**
 * The cheap check before any tokenizing: user, system and tool content (which templates render whole) of more
 * bytes than `contextTokens` tokens can hold — no token stands for more than `maxTokenBytes` bytes — cannot fit.
 */
export function checkPromptBytes(req: GenerationRequest, contextTokens: number, maxTokenBytes: number): void {
  let bytes = 0;
  for (const m of req.messages) if (m.role !== "assistant") bytes += Buffer.byteLength(m.content, "utf8");
  const limit = contextTokens * Math.max(1, maxTokenBytes);
  if (bytes > limit)
    throw badRequest(
      `the messages hold ${bytes} bytes of text, more than this model's context of ${contextTokens} tokens can take (at most ${limit} bytes: ${maxTokenBytes} per token at best)`,
      "messages",
      "context_length_exceeded",
    );
}

/** Render + tokenize + clamp max_tokens to the context left. Throws 400 when the prompt does not fit. */
export function preparePrompt(model: ModelContext, req: GenerationRequest, contextTokens: number, defaults: GenerationDefaults): PreparedPrompt {
  const tools = req.toolChoice === "none" ? [] : req.tools;
  const constraint = constraintOf(req.outputFormat, req.toolChoice, tools);
  // content with control-token strings in it is marked so those stay plain text (lib/server/prompt-tokens.ts)
  const { value: guarded, sentinel } = guardContent({ messages: req.messages, tools, kwargs: req.templateKwargs }, model.tokenizer);
  // a constrained reply starts with the JSON (or the tool call) itself: no thinking block first
  const opts = { tools: guarded.tools, enableThinking: constraint ? false : req.enableThinking, kwargs: guarded.kwargs };
  let rendered: string;
  try {
    rendered = model.template.render(guarded.messages, opts);
  } catch (e) {
    throw badRequest(`the chat template could not render these messages: ${(e as Error).message}`, "messages");
  }
  const text = sentinel ? rendered.replaceAll(sentinel, "") : rendered;
  const tokens = model.tokenizer.encodeRendered(rendered, sentinel);
  const room = contextTokens - tokens.length;
  if (room < 1)
    throw badRequest(
      `the prompt is ${tokens.length} tokens; this model's context allows ${contextTokens} (prompt and reply together), so a prompt may have at most ${contextTokens - 1}: shorten the conversation or raise CONTEXT_SIZE`,
      "messages",
      "context_length_exceeded",
    );
  const snapshotAt: number[] = [];
  const nSystem = systemPrefixLength(req.messages);
  if (nSystem > 0 || tools.length > 0) {
    // the leading system messages + tools, rendered alone, are a token prefix of the prompt: snapshot there,
    // so an agent's fixed system prompt is evaluated once for all its conversations
    try {
      const prefixText = model.template.render(guarded.messages.slice(0, nSystem), { ...opts, addGenerationPrompt: false });
      const prefix = model.tokenizer.encodeRendered(prefixText, sentinel);
      if (prefix.length > 0 && prefix.length < tokens.length && prefix.every((t, i) => t === tokens[i])) snapshotAt.push(prefix.length);
    } catch {
      // a template that cannot render a system-only conversation: no prefix snapshot
    }
  }
  // the conversation so far without the generation prompt: an agent's next turn resends these messages and, after
  // them, this turn's reply rendered as history — not as the model generated it (thinking dropped, tool calls
  // re-serialized, other whitespace; an `<think></think>` generation prompt gone) — so this boundary, not the
  // prompt's end, is what the next request shares with this one
  const nHistory = historyPrefixLength(model, guarded.messages, opts, rendered, tokens, sentinel);
  if (nHistory > 0 && !snapshotAt.includes(nHistory)) snapshotAt.push(nHistory);
  return {
    text,
    tokens,
    snapshotAt,
    maxTokens: Math.min(req.maxTokens ?? defaults.maxTokens, defaults.maxTokens, room),
    startInReasoning: promptOpensReasoning(text),
    constraint,
  };
}

/**
 * Tokens of `messages` rendered without the generation prompt when they are a proper prefix of `tokens` (the
 * rendered prompt), else 0. The generation prompt usually starts with a control token (`<|im_start|>`), where the
 * tokenizer splits, so only it is encoded again; otherwise the whole history is.
 */
function historyPrefixLength(model: ModelContext, messages: TemplateMessage[], opts: RenderOptions, rendered: string, tokens: number[], sentinel: string | undefined): number {
  if (messages.length === 0) return 0;
  let history: string;
  try {
    history = model.template.render(messages, { ...opts, addGenerationPrompt: false });
  } catch {
    return 0;
  }
  if (history.length === 0 || history.length >= rendered.length || !rendered.startsWith(history)) return 0;
  const tail = model.tokenizer.encodeRendered(rendered.slice(history.length), sentinel);
  const n = tokens.length - tail.length;
  if (n > 0 && tail.length > 0 && tail.every((t, i) => t === tokens[n + i])) {
    const boundary = rendered.slice(history.length);
    if (model.tokenizer.controlTokens.some((c) => boundary.startsWith(c))) return n;
  }
  const prefix = model.tokenizer.encodeRendered(history, sentinel);
  return prefix.length > 0 && prefix.length < tokens.length && prefix.every((t, i) => t === tokens[i]) ? prefix.length : 0;
}

function systemPrefixLength(messages: TemplateMessage[]): number {
  let n = 0;
  while (n < messages.length && messages[n]!.role === "system") n++;
  return n;
}

/** Turn reasoning events into what the client asked for: a separate field, inline <think> tags, or nothing. */
function shapeReasoning(format: ReasoningFormat) {
  let open = false;
  return (e: OutputEvent | null): OutputEvent[] => {
    if (format === "separate") return e ? [e] : [];
    if (e?.type === "reasoning") {
      if (format === "drop") return [];
      const out: OutputEvent[] = [{ type: "content", text: open ? e.text : `<think>\n${e.text}` }];
      open = true;
      return out;
    }
    const out: OutputEvent[] = [];
    if (open && format === "inline") {
      out.push({ type: "content", text: "\n</think>\n\n" });
      open = false;
    }
    if (e) out.push(e);
    return out;
  };
}

/**
 * Run one prepared request on the engine. Yields the prompt event, then text / reasoning / tool calls as they
 * are decoded, then `done`. Aborting `signal` cancels the engine generation (within one token).
 */
export async function* runGeneration(
  engine: Engine,
  model: ModelContext,
  req: GenerationRequest,
  prompt: PreparedPrompt,
  defaults: GenerationDefaults,
  signal: AbortSignal,
): AsyncGenerator<GenerationEvent> {
  const t0 = performance.now();
  const endIds = new Set([...model.tokenizer.endTokenIds, ...engine.ready.model.eos_token_id]);
  // no seed in the request: a fresh random one, so the same prompt does not always get the same reply
  const sampling = { temperature: defaults.temperature, top_p: defaults.topP, ...req.sampling, seed: req.sampling.seed ?? defaults.seed ?? createRandomSeed() };
  const genReq: GenerateRequest = {
    tokens: prompt.tokens,
    max_tokens: prompt.maxTokens,
    sampling,
    stop_tokens: [...endIds],
    snapshot_at: prompt.snapshotAt,
  };
  if (prompt.grammar) genReq.grammar = prompt.grammar;
  if (req.logprobs) {
    genReq.logprobs = true;
    if (req.logprobs.top > 0) genReq.top_logprobs = req.logprobs.top;
  }
  if (req.logitBias) {
    const vocab = engine.ready.model.vocab_size;
    for (const id of Object.keys(req.logitBias))
      if (Number(id) >= vocab) throw badRequest(`'logit_bias' names token ${id}; this model's token ids are 0..${vocab - 1}`, `logit_bias.${id}`);
    genReq.logit_bias = req.logitBias;
  }
  if (req.forceText !== undefined || req.forceTokens !== undefined) {
    if (!defaults.allowForceTokens) throw badRequest("'force_text' / 'force_tokens' are a test hook, off on this server", req.forceText !== undefined ? "force_text" : "force_tokens");
    const forced = req.forceTokens ?? model.tokenizer.encode(req.forceText!);
    const end = model.tokenizer.endTokenIds[0] ?? engine.ready.model.eos_token_id[0];
    genReq.force_tokens = end === undefined ? forced : [...forced, end];
    genReq.max_tokens = Math.min(prompt.maxTokens, genReq.force_tokens.length);
  }

  const tools = new Map<string, ToolSpec>(req.tools.map((t) => [t.function.name, { name: t.function.name, parameters: t.function.parameters as ToolSpec["parameters"] }]));
  const parser = createOutputParser({
    startInReasoning: prompt.startInReasoning,
    parseToolCalls: req.tools.length > 0 && req.toolChoice !== "none",
    tools,
  });
  const detok = createDetokenizer(model.tokenizer.decode);
  const stops = createStopMatcher(req.stop);
  const reasoningFormat = req.reasoningFormat ?? defaults.reasoningFormat;
  const shape = shapeReasoning(reasoningFormat);
  const utf8 = new TextDecoder();
  const logprobPiece = (id: number, logprob: number) => {
    const bytes = model.tokenizer.tokenBytes(id);
    return { token: utf8.decode(new Uint8Array(bytes)), logprob, bytes };
  };
  // stop strings end generation early: cancel the engine ourselves, but report `stop`
  const inner = new AbortController();
  const onAbort = () => inner.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  let stoppedByString = false;
  let reasoningTokens = 0;
  let inReasoning = prompt.startInReasoning;
  let ttftMs = 0;

  const emit = function* (text: string) {
    for (const e of parser.push(text)) yield* shape(e);
  };

  try {
    for await (const ev of engine.generate(genReq, inner.signal)) {
      if (ev.type === "prompt") {
        yield { type: "prompt", promptTokens: ev.prompt_tokens, cachedTokens: ev.cached_tokens };
      } else if (ev.type === "token") {
        if (ttftMs === 0) ttftMs = performance.now() - t0;
        if (stoppedByString || endIds.has(ev.token)) continue;
        const text = detok.push(ev.token);
        const tokenInReasoning = inReasoning || text.includes("</think>") || text.includes("<think>");
        if (inReasoning) reasoningTokens++;
        if (text.includes("</think>")) inReasoning = false;
        else if (text.includes("<think>")) inReasoning = true;
        if (text) {
          const r = stops.push(text);
          yield* emit(r.text);
          if (r.stopped) {
            stoppedByString = true;
            inner.abort();
          }
        }
        if (req.logprobs && ev.logprob !== undefined && !(tokenInReasoning && reasoningFormat === "drop")) {
          const entry: LogprobEntry = {
            ...logprobPiece(ev.token, ev.logprob),
            top_logprobs: (ev.top_logprobs ?? []).map((t) => logprobPiece(t.token, t.logprob)),
          };
          yield { type: "logprobs", channel: tokenInReasoning && reasoningFormat === "separate" ? "reasoning" : "content", entry };
        }
      } else if (ev.type === "done") {
        if (!stoppedByString) {
          const r = stops.push(detok.flush());
          yield* emit(r.text + (r.stopped ? "" : stops.flush()));
          if (r.stopped) stoppedByString = true;
        }
        for (const e of parser.finish()) yield* shape(e);
        yield* shape(null);
        let finishReason: FinishReason =
          stoppedByString ? "stop" : ev.reason === "length" ? "length" : ev.reason === "cancelled" ? "cancelled" : "stop";
        if (parser.nToolCalls > 0 && finishReason === "stop") finishReason = "tool_calls";
        yield {
          type: "done",
          finishReason,
          usage: { promptTokens: ev.prompt_tokens, cachedTokens: ev.cached_tokens, completionTokens: ev.completion_tokens, reasoningTokens },
          timings: { prefillMs: ev.prefill_ms, decodeMs: ev.decode_ms, ttftMs, totalMs: performance.now() - t0 },
        };
        return;
      }
    }
    throw new EngineError("the engine ended the generation without `done`", "internal");
  } catch (e) {
    if (e instanceof EngineError) {
      if (e.code === "bad_request" || e.code === "bad_token" || e.code === "context_overflow") throw badRequest(`engine: ${e.message}`, null, e.code);
      const code = e.code === "internal" ? "engine_error" : e.code === "stalled" ? "engine_stalled" : e.code;
      throw new ApiError(503, `the engine failed: ${e.message}`, "service_unavailable", null, code, { "retry-after": "5" });
    }
    throw e;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

