// Request validation: OpenAI chat-completions and responses bodies -> one normalized generation request,
// or a 400 naming the offending field (`messages[2].content`).
import type { SamplingParams } from "../engine/types.ts";
import type { TemplateMessage, TemplateTool } from "./chat-template.ts";
import { badRequest } from "./errors.ts";
import { type OutputFormat, parseOutputFormat } from "./structured-output.ts";

export type ReasoningFormat = "separate" | "inline" | "drop";
export const REASONING_FORMATS: readonly ReasoningFormat[] = ["separate", "inline", "drop"];

export type ToolChoice = "auto" | "none" | "required" | { name: string };

/** What one request asks the engine for, whichever endpoint it came through. */
export interface GenerationRequest {
  model: string | undefined;
  messages: TemplateMessage[];
  tools: TemplateTool[];
  toolChoice: ToolChoice;
  /** undefined = as many as the context allows, up to the server's MAX_TOKENS */
  maxTokens: number | undefined;
  sampling: SamplingParams;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  /** undefined = the template's default */
  enableThinking: boolean | undefined;
  reasoningFormat: ReasoningFormat | undefined;
  templateKwargs: Record<string, unknown>;
  /** Per generated token: its log-probability, and the `topLogprobs` most likely alternatives (0..20). */
  logprobs: { top: number } | undefined;
  /** Token id -> bias added to its logit before sampling, in [-100, 100]. */
  logitBias: Record<string, number> | undefined;
  /** Test hook (only honoured when the server allows it): emit exactly this text / these ids. */
  forceText?: string;
  forceTokens?: number[];
  /** response_format / text.format */
  outputFormat: OutputFormat;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === "object" && !Array.isArray(v);
const typeName = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);

function num(body: Obj, key: string, opts: { min?: number; max?: number; int?: boolean; minExclusive?: boolean } = {}): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) throw badRequest(`'${key}' must be a number, got ${typeName(v)}`, key);
  if (opts.int && !Number.isInteger(v)) throw badRequest(`'${key}' must be an integer, got ${v}`, key);
  if (opts.min !== undefined && (opts.minExclusive ? v <= opts.min : v < opts.min))
    throw badRequest(`'${key}' must be ${opts.minExclusive ? ">" : ">="} ${opts.min}, got ${v}`, key);
  if (opts.max !== undefined && v > opts.max) throw badRequest(`'${key}' must be <= ${opts.max}, got ${v}`, key);
  return v;
}

function bool(body: Obj, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw badRequest(`'${key}' must be a boolean, got ${typeName(v)}`, key);
  return v;
}

function str(body: Obj, key: string, path = key): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw badRequest(`'${path}' must be a string, got ${typeName(v)}`, path);
  return v;
}

/** Text of a content field: a string, or an array of text parts (images are refused: the model reads text only). */
function contentText(v: unknown, path: string, allowNull: boolean): string {
  if (v === undefined || v === null) {
    if (allowNull) return "";
    throw badRequest(`'${path}' is required`, path);
  }
  if (typeof v === "string") return v;
  if (!Array.isArray(v)) throw badRequest(`'${path}' must be a string or an array of content parts, got ${typeName(v)}`, path);
  return v
    .map((part, i) => {
      const p = `${path}[${i}]`;
      if (!isObj(part)) throw badRequest(`'${p}' must be an object`, p);
      if (["text", "input_text", "output_text"].includes(String(part.type))) {
        if (typeof part.text !== "string") throw badRequest(`'${p}.text' must be a string`, `${p}.text`);
        return part.text;
      }
      throw badRequest(`'${p}.type' ${JSON.stringify(part.type)} is not supported (this model reads text only)`, `${p}.type`);
    })
    .join("");
}

function parseArguments(v: unknown, path: string): unknown {
  if (typeof v !== "string") {
    if (isObj(v)) return v;
    throw badRequest(`'${path}' must be a JSON string`, path);
  }
  try {
    return JSON.parse(v);
  } catch {
    return v; // the template prints it as it came
  }
}

function parseMessages(v: unknown): TemplateMessage[] {
  if (v === undefined) throw badRequest("'messages' is required", "messages");
  if (!Array.isArray(v)) throw badRequest(`'messages' must be an array, got ${typeName(v)}`, "messages");
  if (v.length === 0) throw badRequest("'messages' must not be empty", "messages");
  return v.map((m, i) => {
    const path = `messages[${i}]`;
    if (!isObj(m)) throw badRequest(`'${path}' must be an object`, path);
    const role = m.role;
    if (typeof role !== "string" || !["system", "developer", "user", "assistant", "tool", "function"].includes(role))
      throw badRequest(`'${path}.role' must be one of system, developer, user, assistant, tool; got ${JSON.stringify(role)}`, `${path}.role`);
    const out: TemplateMessage = {
      role: role === "developer" ? "system" : role === "function" ? "tool" : role,
      content: contentText(m.content, `${path}.content`, role === "assistant"),
    };
    if (role === "assistant") {
      const reasoning = m.reasoning_content ?? m.reasoning;
      if (typeof reasoning === "string") out.reasoning_content = reasoning;
      if (m.tool_calls !== undefined && m.tool_calls !== null) {
        if (!Array.isArray(m.tool_calls)) throw badRequest(`'${path}.tool_calls' must be an array`, `${path}.tool_calls`);
        out.tool_calls = m.tool_calls.map((tc, j) => {
          const p = `${path}.tool_calls[${j}]`;
          if (!isObj(tc) || !isObj(tc.function)) throw badRequest(`'${p}.function' must be an object`, `${p}.function`);
          const name = str(tc.function, "name", `${p}.function.name`);
          if (!name) throw badRequest(`'${p}.function.name' is required`, `${p}.function.name`);
          return {
            id: typeof tc.id === "string" ? tc.id : undefined,
            type: "function" as const,
            function: { name, arguments: parseArguments(tc.function.arguments ?? "{}", `${p}.function.arguments`) },
          };
        });
      }
    }
    if (out.role === "tool") {
      const id = str(m, "tool_call_id", `${path}.tool_call_id`);
      if (id) out.tool_call_id = id;
    }
    if (typeof m.name === "string") out.name = m.name;
    return out;
  });
}

function parseTool(t: unknown, path: string): TemplateTool {
  if (!isObj(t)) throw badRequest(`'${path}' must be an object`, path);
  if (t.type !== "function") throw badRequest(`'${path}.type' must be "function", got ${JSON.stringify(t.type)}`, `${path}.type`);
  // chat completions nest the function; the responses API flattens it
  const f = isObj(t.function) ? t.function : t;
  const fpath = isObj(t.function) ? `${path}.function` : path;
  const name = str(f, "name", `${fpath}.name`);
  if (!name) throw badRequest(`'${fpath}.name' is required`, `${fpath}.name`);
  if (f.parameters !== undefined && f.parameters !== null && !isObj(f.parameters))
    throw badRequest(`'${fpath}.parameters' must be a JSON schema object`, `${fpath}.parameters`);
  const fn: TemplateTool["function"] = { name };
  if (typeof f.description === "string") fn.description = f.description;
  fn.parameters = f.parameters ?? { type: "object", properties: {} };
  return { type: "function", function: fn };
}

function parseTools(v: unknown): TemplateTool[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw badRequest(`'tools' must be an array, got ${typeName(v)}`, "tools");
  return v.map((t, i) => parseTool(t, `tools[${i}]`));
}

function parseToolChoice(v: unknown, tools: TemplateTool[]): ToolChoice {
  if (v === undefined || v === null) return "auto";
  if (v === "auto" || v === "none" || v === "required") return v;
  if (isObj(v)) {
    const name = isObj(v.function) ? v.function.name : v.name;
    if (typeof name === "string") {
      if (!tools.some((t) => t.function.name === name))
        throw badRequest(`'tool_choice' names ${JSON.stringify(name)}, which is not in 'tools'`, "tool_choice");
      return { name };
    }
  }
  throw badRequest(`'tool_choice' must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}`, "tool_choice");
}

export function parseStop(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v === "string") return v ? [v] : [];
  if (Array.isArray(v) && v.every((s) => typeof s === "string")) {
    if (v.length > 16) throw badRequest("'stop' takes at most 16 strings", "stop");
    return v.filter((s) => s.length > 0);
  }
  throw badRequest("'stop' must be a string or an array of strings", "stop");
}

export function parseSampling(body: Obj): SamplingParams {
  const s: SamplingParams = {};
  const set = <K extends keyof SamplingParams>(k: K, v: number | undefined) => {
    if (v !== undefined) s[k] = v;
  };
  set("temperature", num(body, "temperature", { min: 0, max: 2 }));
  set("top_p", num(body, "top_p", { min: 0, max: 1 }));
  const topK = num(body, "top_k", { int: true, min: -1 });
  if (topK !== undefined && topK > 0) s.top_k = topK;
  set("min_p", num(body, "min_p", { min: 0, max: 1 }));
  set("presence_penalty", num(body, "presence_penalty", { min: -2, max: 2 }));
  set("frequency_penalty", num(body, "frequency_penalty", { min: -2, max: 2 }));
  set("repetition_penalty", num(body, "repetition_penalty", { min: 0, minExclusive: true, max: 10 }));
  set("seed", num(body, "seed", { int: true, min: 0, max: Number.MAX_SAFE_INTEGER }));
  return s;
}

/** `logprobs` + `top_logprobs` (chat completions): top_logprobs needs logprobs, as in OpenAI's API. */
function parseLogprobs(body: Obj): GenerationRequest["logprobs"] {
  const on = bool(body, "logprobs") ?? false;
  const top = num(body, "top_logprobs", { int: true, min: 0, max: 20 });
  if (top !== undefined && !on) throw badRequest("'top_logprobs' needs 'logprobs': true", "top_logprobs");
  return on ? { top: top ?? 0 } : undefined;
}

/** `logit_bias`: {"<token id>": bias in [-100, 100]}; ids are checked against the vocabulary later. */
export function parseLogitBias(body: Obj): Record<string, number> | undefined {
  const v = body.logit_bias;
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw badRequest(`'logit_bias' must be an object of token id -> bias, got ${typeName(v)}`, "logit_bias");
  const out: Record<string, number> = {};
  for (const [k, b] of Object.entries(v)) {
    if (!/^(0|[1-9][0-9]{0,9})$/.test(k)) throw badRequest(`'logit_bias' keys must be token ids (integers), got ${JSON.stringify(k)}`, "logit_bias");
    if (typeof b !== "number" || !Number.isFinite(b) || b < -100 || b > 100)
      throw badRequest(`'logit_bias.${k}' must be a number in [-100, 100], got ${JSON.stringify(b)}`, `logit_bias.${k}`);
    out[k] = b;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Fields each endpoint understands; everything else is a 400 naming it (never silently ignored). */
const COMMON_FIELDS = [
  "model", "stream", "stream_options", "tools", "tool_choice", "temperature", "top_p", "top_k", "min_p", "presence_penalty",
  "frequency_penalty", "repetition_penalty", "seed", "stop", "reasoning", "reasoning_effort", "reasoning_format",
  "enable_thinking", "chat_template_kwargs", "force_text", "force_tokens", "parallel_tool_calls", "store",
  // identifiers and hints with nothing to act on here: accepted, documented as having no effect
  "user", "metadata", "safety_identifier", "prompt_cache_key", "service_tier",
];
const CHAT_FIELDS = new Set([...COMMON_FIELDS, "messages", "max_tokens", "max_completion_tokens", "n", "logprobs", "top_logprobs", "logit_bias", "response_format", "modalities"]);
const RESPONSES_FIELDS = new Set([...COMMON_FIELDS, "input", "instructions", "max_output_tokens", "previous_response_id", "text", "truncation"]);
/** Known OpenAI fields this server does not implement, with the reason. */
const UNSUPPORTED: Record<string, string> = {
  functions: "use 'tools'",
  function_call: "use 'tool_choice'",
  audio: "this model reads and writes text only",
  prediction: "predicted outputs are not implemented",
  web_search_options: "this server has no web search",
  verbosity: "not implemented",
  background: "this server runs requests in the foreground only",
  conversation: "this server keeps no state: send the whole conversation in 'input'",
  prompt: "stored prompts are not available: send 'instructions' and 'input'",
  include: "nothing extra can be included",
  max_tool_calls: "not implemented",
  top_logprobs: "logprobs are available on /v1/chat/completions only",
};

function checkFields(body: Obj, allowed: Set<string>): void {
  for (const key of Object.keys(body)) {
    if (allowed.has(key)) continue;
    const why = UNSUPPORTED[key];
    if (why) throw badRequest(`'${key}' is not supported by this server: ${why}`, key, "unsupported_parameter");
    throw badRequest(`unknown field '${key}'; see the server's documented parameters`, key, "unknown_parameter");
  }
  const so = body.stream_options;
  if (isObj(so)) for (const k of Object.keys(so)) if (k !== "include_usage" && k !== "include_obfuscation")
    throw badRequest(`unknown field 'stream_options.${k}'`, `stream_options.${k}`, "unknown_parameter");
  if (body.store === true) throw badRequest("'store': true is not supported: this server stores nothing", "store", "unsupported_parameter");
  if (body.parallel_tool_calls === false)
    throw badRequest("'parallel_tool_calls': false is not supported: the model may call several tools in one turn", "parallel_tool_calls", "unsupported_parameter");
  if (body.modalities !== undefined && body.modalities !== null) {
    const m = body.modalities;
    if (!Array.isArray(m) || m.some((x) => x !== "text")) throw badRequest(`'modalities' must be ["text"]: this model writes text only`, "modalities", "unsupported_parameter");
  }
  if (body.truncation !== undefined && body.truncation !== null && body.truncation !== "disabled")
    throw badRequest(`'truncation' must be "disabled": a prompt longer than the context is refused, never cut`, "truncation", "unsupported_parameter");
}

/** reasoning on/off from `reasoning`, `reasoning_effort`, `chat_template_kwargs.enable_thinking`, `enable_thinking`. */
function parseThinking(body: Obj, kwargs: Obj): boolean | undefined {
  if (typeof kwargs.enable_thinking === "boolean") return kwargs.enable_thinking;
  const r = body.reasoning;
  if (typeof r === "boolean") return r;
  if (isObj(r)) {
    if (r.enabled === false || r.effort === "none") return false;
    if (r.enabled === true || typeof r.effort === "string") return true;
  }
  if (r !== undefined && r !== null && typeof r !== "boolean" && !isObj(r))
    throw badRequest("'reasoning' must be a boolean or an object", "reasoning");
  const effort = str(body, "reasoning_effort");
  if (effort !== undefined) return effort !== "none";
  return bool(body, "enable_thinking");
}

function parseReasoningFormat(body: Obj): ReasoningFormat | undefined {
  const v = str(body, "reasoning_format");
  if (v === undefined) return undefined;
  if (!REASONING_FORMATS.includes(v as ReasoningFormat))
    throw badRequest(`'reasoning_format' must be one of ${REASONING_FORMATS.join(", ")}; got ${JSON.stringify(v)}`, "reasoning_format");
  return v as ReasoningFormat;
}

export function parseForce(body: Obj): Pick<GenerationRequest, "forceText" | "forceTokens"> {
  const out: Pick<GenerationRequest, "forceText" | "forceTokens"> = {};
  const text = str(body, "force_text");
  if (text !== undefined) out.forceText = text;
  const ids = body.force_tokens;
  if (ids !== undefined) {
    if (!Array.isArray(ids) || !ids.every((x) => Number.isInteger(x) && x >= 0))
      throw badRequest("'force_tokens' must be an array of token ids", "force_tokens");
    out.forceTokens = ids as number[];
  }
  return out;
}

function parseKwargs(body: Obj): Obj {
  const k = body.chat_template_kwargs;
  if (k === undefined || k === null) return {};
  if (!isObj(k)) throw badRequest("'chat_template_kwargs' must be an object", "chat_template_kwargs");
  return k;
}

export function parseCommon(body: Obj) {
  const model = str(body, "model");
  const n = num(body, "n", { int: true, min: 1 });
  if (n !== undefined && n > 1) throw badRequest("'n' > 1 is not supported: the engine generates one choice", "n");
  return { model, stream: bool(body, "stream") ?? false };
}

export function validateChatRequest(body: unknown): GenerationRequest {
  if (!isObj(body)) throw badRequest("the request body must be a JSON object");
  checkFields(body, CHAT_FIELDS);
  const { model, stream } = parseCommon(body);
  const messages = parseMessages(body.messages);
  const tools = parseTools(body.tools);
  const maxTokens = num(body, "max_completion_tokens", { int: true, min: 1 }) ?? num(body, "max_tokens", { int: true, min: 1 });
  const so = body.stream_options;
  if (so !== undefined && so !== null && !isObj(so)) throw badRequest("'stream_options' must be an object", "stream_options");
  const kwargs = parseKwargs(body);
  return {
    model,
    messages,
    tools,
    toolChoice: parseToolChoice(body.tool_choice, tools),
    outputFormat: parseOutputFormat(body.response_format, "response_format", false),
    maxTokens,
    sampling: parseSampling(body),
    stop: parseStop(body.stop),
    stream,
    includeUsage: isObj(so) ? so.include_usage === true : false,
    enableThinking: parseThinking(body, kwargs),
    reasoningFormat: parseReasoningFormat(body),
    templateKwargs: kwargs,
    logprobs: parseLogprobs(body),
    logitBias: parseLogitBias(body),
    ...parseForce(body),
  };
}

/** /v1/responses input (text, or message / function_call / function_call_output items) -> chat messages. */
function responsesInputToMessages(input: unknown, instructions: string | undefined): TemplateMessage[] {
  const messages: TemplateMessage[] = [];
  if (instructions) messages.push({ role: "system", content: instructions });
  if (typeof input === "string") {
    messages.push({ role: "user", content: input });
    return messages;
  }
  if (input === undefined) throw badRequest("'input' is required", "input");
  if (!Array.isArray(input)) throw badRequest(`'input' must be a string or an array of items, got ${typeName(input)}`, "input");
  if (input.length === 0) throw badRequest("'input' must not be empty", "input");
  input.forEach((item, i) => {
    const path = `input[${i}]`;
    if (!isObj(item)) throw badRequest(`'${path}' must be an object`, path);
    const type = item.type ?? "message";
    if (type === "message") {
      const role = item.role;
      if (typeof role !== "string" || !["system", "developer", "user", "assistant"].includes(role))
        throw badRequest(`'${path}.role' must be one of system, developer, user, assistant; got ${JSON.stringify(role)}`, `${path}.role`);
      messages.push({ role: role === "developer" ? "system" : role, content: contentText(item.content, `${path}.content`, role === "assistant") });
    } else if (type === "function_call") {
      const name = str(item, "name", `${path}.name`);
      if (!name) throw badRequest(`'${path}.name' is required`, `${path}.name`);
      const call = { id: typeof item.call_id === "string" ? item.call_id : undefined, type: "function" as const, function: { name, arguments: parseArguments(item.arguments ?? "{}", `${path}.arguments`) } };
      const last = messages.at(-1);
      if (last?.role === "assistant" && !last.content.trim() && last.tool_calls) last.tool_calls.push(call);
      else if (last?.role === "assistant" && !last.tool_calls) last.tool_calls = [call];
      else messages.push({ role: "assistant", content: "", tool_calls: [call] });
    } else if (type === "function_call_output") {
      const output = item.output;
      const text = typeof output === "string" ? output : contentText(output, `${path}.output`, false);
      messages.push({ role: "tool", content: text, tool_call_id: typeof item.call_id === "string" ? item.call_id : undefined });
    } else if (type === "reasoning") {
      // earlier reasoning is not fed back: the templates drop it too
    } else throw badRequest(`'${path}.type' ${JSON.stringify(type)} is not supported`, `${path}.type`);
  });
  return messages;
}

export function validateResponsesRequest(body: unknown): GenerationRequest {
  if (!isObj(body)) throw badRequest("the request body must be a JSON object");
  checkFields(body, RESPONSES_FIELDS);
  if (body.text !== undefined && body.text !== null) {
    if (!isObj(body.text)) throw badRequest("'text' must be an object", "text");
    for (const k of Object.keys(body.text)) if (k !== "format") throw badRequest(`'text.${k}' is not supported`, `text.${k}`, "unsupported_parameter");
  }
  const { model, stream } = parseCommon(body);
  if (body.previous_response_id !== undefined && body.previous_response_id !== null)
    throw badRequest("'previous_response_id' is not supported: this server keeps no state, send the whole conversation in 'input'", "previous_response_id");
  const messages = responsesInputToMessages(body.input, str(body, "instructions"));
  const tools = parseTools(body.tools);
  const kwargs = parseKwargs(body);
  return {
    model,
    messages,
    tools,
    toolChoice: parseToolChoice(body.tool_choice, tools),
    outputFormat: parseOutputFormat(isObj(body.text) ? body.text.format : undefined, "text.format", true),
    maxTokens: num(body, "max_output_tokens", { int: true, min: 1 }),
    sampling: parseSampling(body),
    stop: parseStop(body.stop),
    stream,
    includeUsage: true,
    enableThinking: parseThinking(body, kwargs),
    reasoningFormat: parseReasoningFormat(body),
    templateKwargs: kwargs,
    logprobs: undefined,
    logitBias: undefined,
    ...parseForce(body),
  };
}
