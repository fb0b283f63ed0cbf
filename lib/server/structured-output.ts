// Structured output and enforced tool choice by constrained decoding: response_format (json_object, json_schema),
// the Responses API's text.format, tool_choice "required" / a named function. A grammar from @mlc-ai/web-xgrammar
// (compiled against the model's vocabulary) gives the allowed tokens of every step; the engine masks the rest.
import type { TokenGrammar } from "../engine/types.ts";
import { badRequest } from "./errors.ts";
import type { ModelTokenizer } from "./tokenizer.ts";
import type { TemplateTool } from "./chat-template.ts";

// xgrammar is loaded by createStructuredOutput, not here: the prompt workers import this file (constraintOf) and
// never compile a grammar
type Xgr = typeof import("@mlc-ai/web-xgrammar").default;

export type OutputFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; name: string; schema: Record<string, unknown>; strict: boolean };

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === "object" && !Array.isArray(v);

/**
 * `response_format` of chat completions ({type, json_schema: {name, schema, strict}}) or `text.format` of the
 * Responses API ({type, name, schema, strict}); `where` names the field in errors.
 */
export function parseOutputFormat(v: unknown, where: string, flat: boolean): OutputFormat {
  if (v === undefined || v === null) return { type: "text" };
  if (!isObj(v)) throw badRequest(`'${where}' must be an object`, where);
  if (v.type === "text") return { type: "text" };
  if (v.type === "json_object") return { type: "json_object" };
  if (v.type !== "json_schema") throw badRequest(`'${where}.type' must be "text", "json_object" or "json_schema", got ${JSON.stringify(v.type)}`, `${where}.type`);
  const spec = flat ? v : v.json_schema;
  const path = flat ? where : `${where}.json_schema`;
  if (!isObj(spec)) throw badRequest(`'${path}' must be an object with 'name' and 'schema'`, path);
  const schema = spec.schema ?? {};
  if (!isObj(schema)) throw badRequest(`'${path}.schema' must be an object (a JSON schema)`, `${path}.schema`);
  if (spec.strict !== undefined && spec.strict !== null && typeof spec.strict !== "boolean") throw badRequest(`'${path}.strict' must be true or false`, `${path}.strict`);
  return { type: "json_schema", name: typeof spec.name === "string" ? spec.name : "response", schema, strict: spec.strict === true };
}

export type ToolChoiceLike = "auto" | "none" | "required" | { name: string };

/** What a request asks to be enforced; undefined = nothing (free text). */
export function constraintOf(format: OutputFormat, toolChoice: ToolChoiceLike, tools: TemplateTool[]): Constraint | undefined {
  if (toolChoice === "required" || typeof toolChoice === "object") {
    const chosen = typeof toolChoice === "object" ? tools.filter((t) => t.function.name === toolChoice.name) : tools;
    if (chosen.length === 0) throw badRequest("'tool_choice' is \"required\" but 'tools' is empty", "tool_choice");
    return { kind: "tool_call", tools: chosen };
  }
  if (format.type === "json_object") return { kind: "json_object" };
  if (format.type === "json_schema") return { kind: "json_schema", schema: format.schema, strict: format.strict };
  return undefined;
}

export type Constraint =
  | { kind: "json_object" }
  | { kind: "json_schema"; schema: Obj; strict: boolean }
  | { kind: "tool_call"; tools: TemplateTool[] };

/** One model's grammar compiler: the vocabulary is read once (about 0.3 s for 150k tokens), grammars per request. */
export interface StructuredOutput {
  /** Compile `c` (400 naming the part the grammar engine cannot take) and return a fresh per-request matcher. */
  grammarFor(c: Constraint, where: string): Promise<TokenGrammar>;
  /** Grammars handed out and not yet disposed (their matchers live in xgrammar's WASM heap). */
  readonly nLive: number;
}

/** The text of every token id as tokenizer.json spells it (byte-level BPE pieces; added tokens as written). */
export interface VocabSource {
  vocab: string[];
  /** Added special tokens other than the stop tokens: never allowed under a grammar. */
  specialIds: number[];
}

export function readVocab(tokenizerJson: { model: { vocab: Record<string, number> }; added_tokens?: { id: number; content: string; special?: boolean }[] }): VocabSource {
  const vocab: string[] = [];
  for (const [t, id] of Object.entries(tokenizerJson.model.vocab)) vocab[id] = t;
  const specialIds: number[] = [];
  for (const a of tokenizerJson.added_tokens ?? []) {
    vocab[a.id] = a.content;
    if (a.special) specialIds.push(a.id);
  }
  for (let i = 0; i < vocab.length; i++) vocab[i] ??= "";
  return { vocab, specialIds };
}

// xgrammar's WASM module binds console.error when it is instantiated (on first use) and reports why a grammar
// failed only there, then aborts the call: it is first used behind a forwarder, so those lines can be caught.
let printed: string[] | null = null;
async function instantiating<T>(fn: () => Promise<T>): Promise<T> {
  const { error, log } = console;
  console.error = (...a: unknown[]) => (printed ? void printed.push(a.map(String).join(" ")) : error(...a));
  console.log = (...a: unknown[]) => (printed ? void printed.push(a.map(String).join(" ")) : log(...a));
  try {
    return await fn();
  } finally {
    Object.assign(console, { error, log });
  }
}

/** Run an xgrammar call, turning its abort (the reason is only printed) into a 400 naming `where`. */
async function compiling<T>(where: string, fn: () => Promise<T>): Promise<T> {
  printed = [];
  try {
    return await fn();
  } catch (e) {
    const fatal = printed.map((l) => /\[FATAL\][^:]*:\d+: (.*)/.exec(l)?.[1]).find(Boolean);
    throw badRequest(`'${where}' cannot be enforced: ${fatal ?? (e as Error).message}`, where);
  } finally {
    printed = null;
  }
}

const toolCallSchema = (tools: TemplateTool[]) => ({
  anyOf: tools.map((t) => ({
    type: "object",
    properties: { name: { const: t.function.name }, arguments: t.function.parameters ?? { type: "object" } },
    required: ["name", "arguments"],
    additionalProperties: false,
  })),
});

export async function createStructuredOutput(source: VocabSource, modelVocabSize: number, tokenizer: Pick<ModelTokenizer, "endTokenIds">): Promise<StructuredOutput> {
  // loaded on the first structured request: most servers never need it, and every start would pay its import
  const xgr: Xgr = (await import("@mlc-ai/web-xgrammar")).default;
  const stopIds = tokenizer.endTokenIds;
  const vocab = source.vocab.slice();
  for (const id of source.specialIds) if (!stopIds.includes(id)) vocab[id] = ""; // empty = never allowed
  const info = await instantiating(() => xgr.TokenizerInfo.createTokenizerInfo(vocab, "byte_level", false, Math.max(modelVocabSize, vocab.length), stopIds));
  const compiler = await xgr.GrammarCompiler.createGrammarCompiler(info);
  const bytes = Math.ceil(modelVocabSize / 8);

  async function compile(c: Constraint, where: string) {
    // json_object: any JSON object (the builtin JSON grammar would allow an array or a bare value too)
    if (c.kind === "json_object") return compiler.compileJSONSchema(JSON.stringify({ type: "object" }), false, 2);
    if (c.kind === "json_schema") return compiling(`${where}.schema`, () => compiler.compileJSONSchema(JSON.stringify(c.schema), false, 2, undefined, c.strict));
    // a tool call in the JSON form tool-calls.ts parses: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>
    const json = await compiling("tools", () => xgr.Grammar.fromJSONSchema(JSON.stringify(toolCallSchema(c.tools)), false, undefined, undefined, true));
    const body = json.toString().replace(/^root ::=/m, "tool_call_json ::=");
    json.dispose();
    return compiling("tools", () => compiler.compileGrammar(`root ::= "<tool_call>\\n" tool_call_json "\\n</tool_call>"\n${body}`));
  }

  let nLive = 0;
  return {
    get nLive() {
      return nLive;
    },
    async grammarFor(c, where) {
      const compiled = await compile(c, where);
      const matcher = await xgr.GrammarMatcher.createGrammarMatcher(compiled);
      nLive++;
      let over = false;
      let freed = false;
      const free = () => {
        if (freed) return;
        freed = true;
        over = true;
        matcher.dispose();
        compiled.dispose();
        nLive--;
      };
      return {
        async next() {
          if (over || matcher.isTerminated()) return null;
          const words = await matcher.getNextTokenBitmask();
          return new Uint8Array(words.buffer, words.byteOffset, Math.min(bytes, words.byteLength));
        },
        accept(token) {
          if (over) return;
          // a token the mask did not allow (force_tokens) ends the constraint
          if (!matcher.acceptToken(token) || matcher.isTerminated()) free();
        },
        dispose: free,
      };
    },
  };
}
