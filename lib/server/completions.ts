// POST /v1/completions (the legacy text API many tools still use): a prompt string (or token ids) in, text out,
// JSON or SSE. The prompt goes to the engine as it is, without the chat template; the reply is the raw text.
import { badRequest } from "./errors.ts";
import type { GenerationDefaults, GenerationEvent, ModelContext, PreparedPrompt } from "./generate.ts";
import { renderSseData, SSE_DONE } from "./sse.ts";
import { type GenerationRequest, parseCommon, parseForce, parseLogitBias, parseSampling, parseStop } from "./validate.ts";

/** A validated /v1/completions body: the generation request plus its prompt and echo. */
export interface CompletionRequest {
  gen: GenerationRequest;
  /** text, or token ids given as such */
  prompt: string | number[];
  echo: boolean;
}

/** OpenAI's default for this endpoint: 16 tokens when max_tokens is absent. */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === "object" && !Array.isArray(v);
const isTokenIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && x >= 0);

function parsePrompt(v: unknown): string | number[] {
  if (typeof v === "string") return v;
  if (isTokenIds(v)) return v;
  if (Array.isArray(v) && v.length === 1 && (typeof v[0] === "string" || isTokenIds(v[0]))) return v[0] as string | number[];
  if (v === undefined) throw badRequest("'prompt' is required", "prompt");
  if (Array.isArray(v) && v.length > 1) throw badRequest("'prompt' with several prompts is not supported: send one string (or one array of token ids)", "prompt");
  throw badRequest("'prompt' must be a string, an array of token ids, or an array of one of those", "prompt");
}

export function validateCompletionRequest(body: unknown): CompletionRequest {
  if (!isObj(body)) throw badRequest("the request body must be a JSON object");
  const { model, stream } = parseCommon(body);
  const prompt = parsePrompt(body.prompt);
  const maxTokens = body.max_tokens ?? COMPLETIONS_DEFAULT_MAX_TOKENS;
  if (typeof maxTokens !== "number" || !Number.isInteger(maxTokens) || maxTokens < 1) throw badRequest(`'max_tokens' must be an integer >= 1, got ${JSON.stringify(maxTokens)}`, "max_tokens");
  const echo = body.echo ?? false;
  if (typeof echo !== "boolean") throw badRequest("'echo' must be a boolean", "echo");
  for (const key of ["suffix", "logprobs"] as const) {
    if (body[key] !== undefined && body[key] !== null && body[key] !== 0 && body[key] !== false) throw badRequest(`'${key}' is not supported on this server`, key);
  }
  if (body.best_of !== undefined && body.best_of !== null && body.best_of !== 1) throw badRequest("'best_of' other than 1 is not supported", "best_of");
  const so = body.stream_options;
  if (so !== undefined && so !== null && !isObj(so)) throw badRequest("'stream_options' must be an object", "stream_options");
  return {
    prompt,
    echo,
    gen: {
      model,
      messages: [],
      tools: [],
      toolChoice: "none",
      outputFormat: { type: "text" },
      maxTokens,
      sampling: parseSampling(body),
      stop: parseStop(body.stop),
      stream,
      includeUsage: isObj(so) ? so.include_usage === true : false,
      enableThinking: undefined,
      // raw text: a <think> the model writes stays in the text
      reasoningFormat: "inline",
      templateKwargs: {},
      logprobs: undefined,
      logitBias: parseLogitBias(body),
      ...parseForce(body),
    },
  };
}

/** Tokenize the prompt as it is (no template) and clamp max_tokens to the context left. 400 when it does not fit. */
export function prepareCompletionPrompt(model: ModelContext, req: CompletionRequest, contextTokens: number, defaults: GenerationDefaults): PreparedPrompt {
  const tokens = typeof req.prompt === "string" ? model.tokenizer.encode(req.prompt) : req.prompt;
  if (tokens.length === 0) throw badRequest("'prompt' is empty", "prompt");
  const room = contextTokens - tokens.length;
  if (room < 1)
    throw badRequest(
      `the prompt is ${tokens.length} tokens; this model's context allows ${contextTokens} (prompt and reply together): shorten the prompt or raise CONTEXT_SIZE`,
      "prompt",
      "context_length_exceeded",
    );
  const text = typeof req.prompt === "string" ? req.prompt : model.tokenizer.decode(req.prompt);
  return { text, tokens, snapshotAt: [], maxTokens: Math.min(req.gen.maxTokens ?? defaults.maxTokens, defaults.maxTokens, room), startInReasoning: false };
}

export const createTextCompletionId = () => `cmpl-${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;

const apiFinish = (r: string) => (r === "cancelled" || r === "tool_calls" ? "stop" : r);
const usageOf = (u: { promptTokens: number; completionTokens: number; cachedTokens: number }) => ({
  prompt_tokens: u.promptTokens,
  completion_tokens: u.completionTokens,
  total_tokens: u.promptTokens + u.completionTokens,
  prompt_tokens_details: { cached_tokens: u.cachedTokens },
});

/** Collect a whole generation into a text_completion object (`echo` puts the prompt text first). */
export async function collectTextCompletion(events: AsyncIterable<GenerationEvent>, id: string, model: string, echoText: string | undefined) {
  let text = echoText ?? "";
  for await (const e of events) {
    if (e.type === "content" || e.type === "reasoning") text += e.text;
    else if (e.type === "done") {
      return {
        id,
        object: "text_completion",
        created: Math.floor(Date.now() / 1000),
        model,
        system_fingerprint: null,
        choices: [{ text, index: 0, logprobs: null, finish_reason: apiFinish(e.finishReason) }],
        usage: usageOf(e.usage),
      };
    }
  }
  throw new Error("generation ended without a done event");
}

/** Frames of a streamed text completion, one call per generation event. */
export function createTextCompletionChunker(id: string, model: string, includeUsage: boolean, echoText: string | undefined) {
  const created = Math.floor(Date.now() / 1000);
  const chunk = (text: string, finish: string | null = null) =>
    renderSseData({ id, object: "text_completion", created, model, system_fingerprint: null, choices: [{ text, index: 0, logprobs: null, finish_reason: finish }] });
  return {
    start: () => (echoText ? chunk(echoText) : ""),
    event(e: GenerationEvent): string {
      if (e.type === "content" || e.type === "reasoning") return e.text ? chunk(e.text) : "";
      if (e.type !== "done") return "";
      let out = chunk("", apiFinish(e.finishReason));
      if (includeUsage) out += renderSseData({ id, object: "text_completion", created, model, system_fingerprint: null, choices: [], usage: usageOf(e.usage) });
      return out + SSE_DONE;
    },
  };
}
