// The config file format kept from the bash tool: `KEY="value"`, `KEY='value'`, `KEY=value`,
// optional `export `, `#` comments and blank lines. Parsing and in-place rewriting (comments kept).

export interface FileEntry {
  key: string;
  value: string;
  /** 1-based line number */
  line: number;
}

export interface ParsedFile {
  entries: FileEntry[];
  /** Lines that are neither blank, comments nor KEY=value (reported as warnings). */
  malformed: { line: number; text: string }[];
}

const ASSIGN = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/;

/** Unquote a shell-style value: "a b" / 'a b' / bare word with an optional trailing `# comment`. */
export function unquoteValue(raw: string): string {
  if (raw.startsWith('"')) {
    const end = findClosingQuote(raw, '"');
    if (end > 0) return raw.slice(1, end).replace(/\\(["\\$`])/g, "$1");
  }
  if (raw.startsWith("'")) {
    const end = raw.indexOf("'", 1);
    if (end > 0) return raw.slice(1, end);
  }
  const hash = raw.search(/\s#/);
  return (hash >= 0 ? raw.slice(0, hash) : raw).trim();
}

function findClosingQuote(s: string, q: string): number {
  for (let i = 1; i < s.length; i++) {
    if (s[i] === "\\") i++;
    else if (s[i] === q) return i;
  }
  return -1;
}

export function parseConfigText(text: string): ParsedFile {
  const entries: FileEntry[] = [];
  const malformed: ParsedFile["malformed"] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const m = ASSIGN.exec(raw);
    if (!m) {
      malformed.push({ line: i + 1, text: trimmed });
      return;
    }
    entries.push({ key: m[1]!, value: unquoteValue(m[2]!), line: i + 1 });
  });
  return { entries, malformed };
}

/** Quote a value for writing: double quotes, escaping what bash would expand. */
export function quoteValue(value: string): string {
  return `"${value.replace(/(["\\$`])/g, "\\$1")}"`;
}

/**
 * Set KEY to value in a config file's text, keeping every other line (comments included).
 * The last active assignment of KEY is replaced in place (keeping `export ` if it had it);
 * earlier duplicates are left alone (the last one wins when reading). Absent: inserted under its
 * commented-out template line `# KEY=...` if there is one, else appended.
 */
export function setConfigText(text: string, key: string, value: string): string {
  const lines = text.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = ASSIGN.exec(lines[i]!);
    if (m && m[1] === key) {
      const exported = /^\s*export\s/.test(lines[i]!) ? "export " : "";
      lines[i] = `${exported}${key}=${quoteValue(value)}`;
      return lines.join("\n");
    }
  }
  // The user file's template lists every key commented out: put the value right under its comment.
  const commented = new RegExp(`^\\s*#\\s*(?:export\\s+)?${key}\\s*=`);
  const at = lines.findIndex((l) => commented.test(l));
  if (at >= 0) {
    lines.splice(at + 1, 0, `${key}=${quoteValue(value)}`);
    return lines.join("\n");
  }
  const body = text.length === 0 || text.endsWith("\n") ? text : `${text}\n`;
  return `${body}${key}=${quoteValue(value)}\n`;
}

/** Remove every active assignment of KEY from a config file's text (comments and other lines kept). */
export function unsetConfigText(text: string, key: string): string {
  return text
    .split("\n")
    .filter((l) => ASSIGN.exec(l)?.[1] !== key)
    .join("\n");
}
