// Turning one raw setting (a string from a file, env var or flag, or a typed value) into its typed value.
import type { ConfigValue, KeySpec } from "./schema.ts";

export type Parsed = { ok: true; value: ConfigValue } | { ok: false; allowed: string };

/** Text saying what a key accepts, used in every error about it. */
export function describeAllowed(spec: KeySpec): string {
  const auto = spec.optional ? ' or "" (automatic)' : "";
  switch (spec.type) {
    case "int":
      return `a whole number from ${spec.min} to ${spec.max}${auto}`;
    case "float":
      return `a number from ${spec.min} to ${spec.max}${auto}`;
    case "bool":
      return "1 or 0 (also true/false, yes/no, on/off)";
    case "enum":
      return `one of ${spec.values!.join(", ")}`;
    case "path":
      return `a path${auto}`;
    default:
      return "text";
  }
}

const TRUE = new Set(["1", "true", "yes", "on"]);
const FALSE = new Set(["0", "false", "no", "off", ""]);

/** Parse and validate one value. Strings are trimmed; "" means automatic where allowed. */
export function parseValue(spec: KeySpec, raw: ConfigValue): Parsed {
  const bad = { ok: false as const, allowed: describeAllowed(spec) };
  if (raw === null) return spec.optional ? { ok: true, value: null } : bad;
  const text = String(raw).trim();
  switch (spec.type) {
    case "int":
    case "float": {
      if (text === "") return spec.optional ? { ok: true, value: null } : bad;
      const re = spec.type === "int" ? /^[+-]?\d+$/ : /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
      if (!re.test(text)) return bad;
      const n = Number(text);
      if (!Number.isFinite(n) || n < spec.min! || n > spec.max!) return bad;
      return { ok: true, value: n };
    }
    case "bool": {
      const t = text.toLowerCase();
      if (TRUE.has(t)) return { ok: true, value: true };
      if (FALSE.has(t)) return { ok: true, value: false };
      return bad;
    }
    case "enum":
      return spec.values!.includes(text) ? { ok: true, value: text } : bad;
    case "path":
      return { ok: true, value: text };
    default:
      if (text === "" && !spec.optional) return bad;
      if (/[\0\n]/.test(text)) return bad;
      return { ok: true, value: text };
  }
}

/** The value as it is written in a config file ("1"/"0" for booleans, "" for automatic). */
export function formatValue(value: ConfigValue): string {
  if (value === null) return "";
  if (typeof value === "boolean") return value ? "1" : "0";
  return String(value);
}

/** Closest known key by edit distance, for "did you mean". */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toUpperCase(), c.toUpperCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}
