// Markdown tables for the terminal: the rows parsed (`| a | b |`, alignment from the `|:--|--:|` row), inline
// styles kept (bold, italics, code, links), columns sized to their text and shrunk to the terminal width, long
// cells word-wrapped inside their column, drawn with box characters.

export type Align = "left" | "right" | "center";

export interface TableStyle {
  color: boolean;
  bold: string;
  italic: string;
  code: string;
  dim: string;
  reset: string;
}

/** A table line: starts with `|` (after up to three spaces). */
export const isTableLine = (line: string) => /^ {0,3}\|/.test(line);

/** The cells of one row: split at `|` not escaped or inside `code`, outer pipes dropped, trimmed. */
export function parseTableRow(line: string): string[] {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  const cells: string[] = [];
  let cur = "";
  let inCode = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === "\\" && s[i + 1] === "|") {
      cur += "|";
      i++;
    } else if (ch === "`") {
      inCode = !inCode;
      cur += ch;
    } else if (ch === "|" && !inCode) {
      cells.push(cur.trim());
      cur = "";
    } else cur += ch;
  }
  cells.push(cur.trim());
  return cells;
}

/** The `|---|:--:|--:|` row under the header: the alignment of each column, or undefined when it is not one. */
export function parseDelimiterRow(line: string): Align[] | undefined {
  const cells = parseTableRow(line);
  if (!cells.length || !cells.every((c) => /^:?-+:?$/.test(c))) return undefined;
  return cells.map((c) => (c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : "left"));
}

interface Word {
  /** The word as shown: its styled pieces with their escapes. */
  text: string;
}

/** A cell's text as styled words (** / __ bold, * / _ italics, `code`, [text](url) -> text); words split at spaces. */
export function parseCellWords(text: string, st: TableStyle): Word[] {
  let bold = false;
  let italic = false;
  let code = false;
  const styleNow = () => (!st.color ? "" : code ? st.code : (bold ? st.bold : "") + (italic ? st.italic : ""));
  // each word is a list of pieces of one style each
  const words: { text: string; style: string }[][] = [[]];
  let cur = "";
  let curStyle = "";
  const endPiece = () => {
    if (cur) words[words.length - 1]!.push({ text: cur, style: curStyle });
    cur = "";
  };
  const restyle = () => {
    endPiece();
    curStyle = styleNow();
  };
  const endWord = () => {
    endPiece();
    words.push([]);
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    const rest = text.slice(i);
    if (ch === " ") {
      endWord();
      continue;
    }
    if (ch === "`") {
      code = !code;
      restyle();
      continue;
    }
    if (code) {
      cur += ch;
      continue;
    }
    if ((rest.startsWith("**") || rest.startsWith("__")) && (bold || /\S/.test(text[i + 2] ?? ""))) {
      bold = !bold;
      restyle();
      i++;
      continue;
    }
    if ((ch === "*" || (ch === "_" && !/\w/.test(text[i - 1] ?? ""))) && (italic || /\S/.test(text[i + 1] ?? ""))) {
      italic = !italic;
      restyle();
      continue;
    }
    const link = /^\[([^\]]*)\]\([^)\s]*\)/.exec(rest);
    if (link) {
      cur += link[1];
      i += link[0].length - 1;
      continue;
    }
    cur += ch;
  }
  endPiece();
  return words.filter((w) => w.length).map((w) => ({ text: w.map((p) => (p.style ? p.style + p.text + st.reset : p.text)).join("") }));
}

const widthOf = (s: string) => Bun.stringWidth(s);

/** Word-wrap styled words into lines of at most `width` columns (a longer word is cut). */
function wrapWords(words: Word[], width: number): string[] {
  const lines: string[] = [];
  let line = "";
  let lineW = 0;
  for (const w of words) {
    let text = w.text;
    let ww = widthOf(text);
    if (lineW > 0 && lineW + 1 + ww > width) {
      lines.push(line);
      line = "";
      lineW = 0;
    }
    while (ww > width) {
      // cut a long word (escapes are rare in one so long; keep it simple: cut the visible text)
      const plain = text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
      let cut = 0;
      let cw = 0;
      for (const ch of plain) {
        if (cw + widthOf(ch) > width - lineW - (lineW ? 1 : 0)) break;
        cw += widthOf(ch);
        cut += ch.length;
      }
      if (cut === 0) {
        lines.push(line);
        line = "";
        lineW = 0;
        continue;
      }
      line += (lineW ? " " : "") + plain.slice(0, cut);
      lines.push(line);
      line = "";
      lineW = 0;
      text = plain.slice(cut);
      ww = widthOf(text);
    }
    if (!text) continue;
    line += (lineW ? " " : "") + text;
    lineW += (lineW ? 1 : 0) + ww;
  }
  if (line || !lines.length) lines.push(line);
  return lines;
}

function pad(s: string, width: number, align: Align): string {
  const gap = Math.max(0, width - widthOf(s));
  if (align === "right") return " ".repeat(gap) + s;
  if (align === "center") return " ".repeat(Math.floor(gap / 2)) + s + " ".repeat(gap - Math.floor(gap / 2));
  return s + " ".repeat(gap);
}

/**
 * The table as terminal lines no wider than `maxWidth`: each column as wide as its widest cell, the widest columns
 * narrowed (their cells wrapped) until the table fits; header bold, borders dim.
 */
export function renderMarkdownTable(header: string[], aligns: Align[], rows: string[][], maxWidth: number, st: TableStyle): string[] {
  const nCols = Math.max(header.length, aligns.length, ...rows.map((r) => r.length));
  const cell = (r: string[], i: number) => r[i] ?? "";
  const all = [header, ...rows];
  const words = all.map((r) => Array.from({ length: nCols }, (_, i) => parseCellWords(cell(r, i), st)));
  const natural = Array.from({ length: nCols }, (_, i) => Math.max(1, ...words.map((r) => widthOf(r[i]!.map((w) => w.text).join(" ")))));
  const longestWord = Array.from({ length: nCols }, (_, i) => Math.max(1, ...words.flatMap((r) => r[i]!.map((w) => widthOf(w.text)))));
  const budget = Math.max(nCols, maxWidth - (3 * nCols + 1));
  const widths = [...natural];
  const total = () => widths.reduce((a, b) => a + b, 0);
  // narrow the widest column one step at a time; prefer not to go under a column's longest word
  while (total() > budget) {
    let at = -1;
    for (let i = 0; i < nCols; i++) if (widths[i]! > longestWord[i]! && (at < 0 || widths[i]! > widths[at]!)) at = i;
    if (at < 0) for (let i = 0; i < nCols; i++) if (widths[i]! > 1 && (at < 0 || widths[i]! > widths[at]!)) at = i;
    if (at < 0) break;
    widths[at]!--;
  }
  const dim = (s: string) => (st.color ? st.dim + s + st.reset : s);
  const rule = (l: string, m: string, r: string) => dim(l + widths.map((w) => "─".repeat(w + 2)).join(m) + r);
  const renderRow = (r: Word[][], isHeader: boolean) => {
    const cellLines = r.map((ws, i) => wrapWords(ws, widths[i]!));
    const height = Math.max(...cellLines.map((c) => c.length));
    const out: string[] = [];
    for (let y = 0; y < height; y++) {
      const parts = cellLines.map((c, i) => {
        const text = pad(c[y] ?? "", widths[i]!, aligns[i] ?? "left");
        return isHeader && st.color ? st.bold + text + st.reset : text;
      });
      out.push(dim("│ ") + parts.join(dim(" │ ")) + dim(" │"));
    }
    return out;
  };
  return [rule("┌", "┬", "┐"), ...renderRow(words[0]!, true), rule("├", "┼", "┤"), ...words.slice(1).flatMap((r) => renderRow(r, false)), rule("└", "┴", "┘")];
}
