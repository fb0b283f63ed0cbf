// User and tool content never becomes control tokens: before the template renders, every control-token string
// inside content (messages, tool calls, tools, template kwargs) gets an invisible sentinel after its first
// character, so after rendering only the template's own markers match whole; the tokenizer drops the sentinel.
import type { ModelTokenizer } from "./tokenizer.ts";

/** A private-use character found in none of `texts` (the sentinel must never be the user's own text). */
export function pickSentinel(texts: string[]): string {
  for (let cp = 0xe000; cp <= 0xf8ff; cp++) {
    const c = String.fromCodePoint(cp);
    if (!texts.some((t) => t.includes(c))) return c;
  }
  throw new Error("every private-use character occurs in the request"); // 6400 distinct ones: not a real request
}

function collectStrings(v: unknown, out: string[]): void {
  if (typeof v === "string") out.push(v);
  else if (Array.isArray(v)) for (const x of v) collectStrings(x, out);
  else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) {
    out.push(k);
    collectStrings(x, out);
  }
}

function mapStrings<T>(v: T, f: (s: string) => string): T {
  if (typeof v === "string") return f(v) as T;
  if (Array.isArray(v)) return v.map((x) => mapStrings(x, f)) as T;
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [f(k), mapStrings(x, f)])) as T;
  return v;
}

export interface GuardedContent<T> {
  value: T;
  /** undefined when no content held a control string (then nothing was changed). */
  sentinel: string | undefined;
}

/** Mark every control-token string in every string of `value` (messages, tools, kwargs) with a sentinel. */
export function guardContent<T>(value: T, tokenizer: Pick<ModelTokenizer, "controlTokens">): GuardedContent<T> {
  const controls = tokenizer.controlTokens;
  if (controls.length === 0) return { value, sentinel: undefined };
  const strings: string[] = [];
  collectStrings(value, strings);
  if (!strings.some((s) => controls.some((c) => s.includes(c)))) return { value, sentinel: undefined };
  const sentinel = pickSentinel(strings);
  const escaped = [...controls].sort((a, b) => b.length - a.length).map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const re = new RegExp(escaped.join("|"), "gu");
  const mark = (s: string) => s.replace(re, (m) => {
    const first = String.fromCodePoint(m.codePointAt(0)!);
    return first + sentinel + m.slice(first.length);
  });
  return { value: mapStrings(value, mark), sentinel };
}
