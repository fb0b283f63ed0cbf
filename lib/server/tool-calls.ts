// Parse one `<tool_call>` body into an OpenAI function call: Qwen3 JSON form
// ({"name": ..., "arguments": {...}}) or Qwen3.5 / Qwen3-Coder XML form
// (<function=NAME><parameter=KEY>value</parameter></function>), parameter values typed by the tool's JSON schema.

export interface ToolSpec {
  name: string;
  parameters?: JsonSchema;
}

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  [k: string]: unknown;
}

export interface ParsedToolCall {
  name: string;
  /** JSON text of an object, as OpenAI's `function.arguments`. */
  arguments: string;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

/** Returns null when the body is not a well-formed call in either form (the caller then returns it as text). */
export function parseToolCallBody(body: string, tools: ReadonlyMap<string, ToolSpec>): ParsedToolCall | null {
  const text = body.trim();
  if (text.startsWith("{")) return parseJsonCall(text);
  if (text.startsWith("<function=")) return parseXmlCall(text, tools);
  return null;
}

/** Raw control characters (a tab, a newline) inside JSON strings as \u escapes: models write them, JSON forbids them. */
function escapeControlInStrings(text: string): string {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inString && ch === "\\") {
      out += ch + (text[++i] ?? "");
      continue;
    }
    if (ch === '"') inString = !inString;
    const code = ch.charCodeAt(0);
    out += inString && code < 0x20 ? `\\u${code.toString(16).padStart(4, "0")}` : ch;
  }
  return out;
}

function parseJsonCall(text: string): ParsedToolCall | null {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    try {
      obj = JSON.parse(escapeControlInStrings(text));
    } catch {
      return null;
    }
  }
  if (!isPlainObject(obj) || typeof obj.name !== "string" || !obj.name) return null;
  let args = obj.arguments ?? obj.parameters ?? {};
  if (typeof args === "string") {
    try {
      args = JSON.parse(args);
    } catch {
      return null;
    }
  }
  if (!isPlainObject(args)) return null;
  return { name: obj.name, arguments: JSON.stringify(args) };
}

const XML_CALL = /^<function=([^>\n]+)>([\s\S]*?)<\/function>$/;
const XML_PARAM = /<parameter=([^>\n]+)>([\s\S]*?)<\/parameter>/g;

function parseXmlCall(text: string, tools: ReadonlyMap<string, ToolSpec>): ParsedToolCall | null {
  const m = XML_CALL.exec(text);
  if (!m) return null;
  const name = m[1]!.trim();
  const inner = m[2]!;
  if (!name) return null;
  const schema = tools.get(name)?.parameters?.properties ?? {};
  const args: Record<string, unknown> = {};
  let last = 0;
  for (const p of inner.matchAll(XML_PARAM)) {
    if (inner.slice(last, p.index).trim() !== "") return null; // stray text between parameters
    last = p.index + p[0].length;
    const key = p[1]!.trim();
    let value = p[2]!;
    if (value.startsWith("\n")) value = value.slice(1);
    if (value.endsWith("\n")) value = value.slice(0, -1);
    args[key] = typeValue(value, schema[key]);
  }
  if (inner.slice(last).trim() !== "") return null;
  return { name, arguments: JSON.stringify(args) };
}

const schemaTypes = (s: JsonSchema | undefined): string[] => {
  if (!s) return [];
  if (typeof s.type === "string") return [s.type];
  if (Array.isArray(s.type)) return s.type;
  const alts = s.anyOf ?? s.oneOf;
  return alts ? alts.flatMap(schemaTypes) : [];
};

/** Convert a parameter's raw text to the type its schema asks for; text that does not fit stays a string. */
export function typeValue(raw: string, schema: JsonSchema | undefined): unknown {
  const types = schemaTypes(schema);
  if (types.length === 0 || (types.length === 1 && types[0] === "string")) return raw;
  const t = raw.trim();
  for (const type of types) {
    switch (type) {
      case "integer":
        if (/^-?\d+$/.test(t)) return Number(t);
        break;
      case "number":
        if (t !== "" && Number.isFinite(Number(t))) return Number(t);
        break;
      case "boolean":
        if (/^(true|false)$/i.test(t)) return t.toLowerCase() === "true";
        break;
      case "null":
        if (t === "null" || t === "None") return null;
        break;
      case "object":
      case "array":
        try {
          const v = JSON.parse(t);
          if (type === "array" ? Array.isArray(v) : isPlainObject(v)) return v;
        } catch {
          // not JSON: keep trying the other types, then the raw string
        }
        break;
    }
  }
  return raw;
}

/** `call_` + 24 random alphanumerics, as OpenAI ids look. */
export function createToolCallId(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  let id = "call_";
  for (const b of bytes) id += alphabet[b % alphabet.length];
  return id;
}
