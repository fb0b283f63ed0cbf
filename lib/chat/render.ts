// Streaming Markdown for the terminal: text arrives in arbitrary chunks and is styled as it comes.
// Block syntax (code fences, headers, lists, quotes, rules) is decided at the start of each line,
// holding back only the few characters that are still ambiguous; inline markers (**, *, _, `) are
// held until the next character shows whether they open or close; code lines are coloured when they end
// (lib/chat/highlight.ts), a table when its last row has arrived (lib/chat/table.ts). Given the terminal
// width, text is word-wrapped (lib/chat/wrap.ts) and tables fit it. With colour off the text passes through
// unchanged (only wrapped and tables laid out when a width is given). Reasoning is printed dimmed, without Markdown.
import { LineHighlighter, resolveLanguage } from "./highlight.ts";
import { type Align, isTableLine, parseDelimiterRow, parseTableRow, renderMarkdownTable } from "./table.ts";
import { WordWrapper } from "./wrap.ts";

export interface Ansi {
  reset: string;
  bold: string;
  dim: string;
  italic: string;
  underline: string;
  code: string;
  heading: string;
  bullet: string;
}

const ANSI: Ansi = {
  reset: "\x1b[0m",
  bold: "\x1b[1m",
  dim: "\x1b[2m",
  italic: "\x1b[3m",
  underline: "\x1b[4m",
  code: "\x1b[36m",
  heading: "\x1b[35m",
  bullet: "\x1b[36m",
};

export const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");

export interface MarkdownRendererOptions {
  color: boolean;
  /** Where rendered text goes (e.g. s => process.stdout.write(s)). */
  write: (s: string) => void;
  /** Terminal columns: wrap words and fit tables to them; undefined (not a terminal) = neither. */
  width?: number;
}

/** Narrower than this, wrapping does more harm than good. */
const MIN_WRAP_WIDTH = 20;

type LineKind = "text" | "heading" | "quote";

/** Incremental Markdown -> ANSI renderer. Call write() per chunk, end() when the reply is done. */
export class MarkdownRenderer {
  private readonly color: boolean;
  private readonly out: (s: string) => void;
  // block state
  private atLineStart = true;
  private prefix = "";
  private inFence = false;
  private fenceChar = "";
  private fenceLen = 0;
  private lineKind: LineKind = "text";
  private headingLevel = 0;
  private codeLine = false;
  // inline state
  private bold = false;
  private italic = false;
  private inlineCode = false;
  private pending = "";
  /** Text held while it may still be a [text](url) link. */
  private link: string | undefined;
  private prev = " ";
  private sgr = "";
  // reasoning
  private inReasoning = false;
  /** Everything written so far ends with a newline (or nothing was written). */
  private lastNewline = true;

  private pieces: string[] = [];
  private readonly width?: number;
  private readonly wrapper?: WordWrapper;
  // code colouring: the language of the open fence and the code line held until it ends
  private highlighter?: LineHighlighter;
  private codeBuf = "";
  // tables: lines that may be one, until a line that is not ends it
  private tableLines: string[] = [];
  private refeeding = false;
  // colour off with a width: the start of a line held while it may be a table row or a fence
  private rawHead?: string;
  private rawHeld = false;
  private rawFence = false;

  constructor(opts: MarkdownRendererOptions) {
    this.color = opts.color;
    if (opts.width !== undefined && opts.width >= MIN_WRAP_WIDTH) {
      this.width = opts.width;
      this.wrapper = new WordWrapper(opts.width, (s) => void this.pieces.push(s));
    }
    // collect the pieces of one call and hand them over in one write (one syscall per chunk, not per character)
    this.out = this.wrapper ? (s: string) => this.wrapper!.write(s) : (s: string) => void this.pieces.push(s);
    this.sink = opts.write;
  }

  private readonly sink: (s: string) => void;

  private flushOut(): void {
    if (!this.pieces.length) return;
    const s = this.pieces.join("");
    this.pieces = [];
    this.sink(s);
  }

  /** Render a chunk of the reply's content. */
  write(text: string): void {
    if (this.inReasoning) this.endReasoning();
    if (!this.color) {
      if (this.width) for (const ch of text) this.feedRaw(ch);
      else if (text) this.emitRaw(text);
    } else for (const ch of text) this.feed(ch);
    this.flushOut();
  }

  /** Render a chunk of reasoning (dimmed, as is). */
  writeReasoning(text: string): void {
    if (!text) return;
    if (!this.inReasoning) {
      this.flushAll();
      this.inReasoning = true;
      if (this.color) this.emitRaw(ANSI.dim + ANSI.italic);
    }
    this.emitRaw(text);
    this.flushOut();
  }

  private endReasoning(): void {
    this.inReasoning = false;
    if (this.color) this.emitRaw(ANSI.reset);
    this.emitRaw(this.lastNewline ? "\n" : "\n\n");
  }

  /** Flush what is held back and reset styles; ends with a newline when `newline` and text was written. */
  end(opts: { newline?: boolean } = {}): void {
    if (this.inReasoning) {
      this.inReasoning = false;
      if (this.color) this.emitRaw(ANSI.reset);
    }
    this.flushAll();
    if (!this.color && this.rawHead !== undefined) this.endRawLine();
    if (!this.color) this.flushTable();
    if (opts.newline !== false && !this.lastNewline) this.emitRaw("\n");
    this.wrapper?.flush();
    this.flushOut();
  }

  /** Colour off, width known: pass text through, holding lines that may be table rows or fences. */
  private feedRaw(ch: string): void {
    if (this.rawHead === undefined) {
      if (!this.lastNewline) return this.emitRaw(ch);
      this.rawHead = "";
    }
    this.rawHead += ch;
    const head = this.rawHead;
    if (this.rawHeld) {
      if (ch === "\n") this.endRawLine();
      return;
    }
    const lead = /^ */.exec(head)![0].length;
    const first = head[lead];
    if (first === undefined && lead <= 3 && ch !== "\n") return; // only spaces so far
    const candidate = lead <= 3 && (first === "`" || first === "~" || (first === "|" && !this.rawFence));
    if (candidate && ch !== "\n") {
      this.rawHeld = true;
      return;
    }
    if (candidate) return this.endRawLine();
    // an ordinary line: it ends a table, and streams
    this.rawHead = undefined;
    this.flushTable();
    this.wrapper?.setVerbatim(this.rawFence);
    this.emitRaw(head);
  }

  /** A held line is complete (or the reply ended): a fence, a table row, or text after all. */
  private endRawLine(): void {
    const line = this.rawHead ?? "";
    this.rawHead = undefined;
    this.rawHeld = false;
    const body = line.replace(/\n$/, "");
    if (/^ {0,3}(`{3,}|~{3,})/.test(body)) {
      this.flushTable();
      this.wrapper?.setVerbatim(true);
      this.emitRaw(line);
      this.rawFence = !this.rawFence;
      this.wrapper?.setVerbatim(this.rawFence);
      return;
    }
    if (!this.rawFence && isTableLine(body)) {
      this.tableLines.push(body);
      if (!line.endsWith("\n")) this.flushTable();
      return;
    }
    this.flushTable();
    this.wrapper?.setVerbatim(this.rawFence);
    this.emitRaw(line);
  }

  /**
   * The lines held as a table are complete: drawn to fit the width when they are one (a header, then the
   * delimiter row), else written as the text they are.
   */
  private flushTable(): void {
    if (!this.tableLines.length) return;
    const lines = this.tableLines;
    this.tableLines = [];
    const aligns: Align[] | undefined = lines.length >= 2 ? parseDelimiterRow(lines[1]!) : undefined;
    if (!aligns || !this.width) {
      if (this.color) {
        this.refeeding = true;
        for (const l of lines) for (const c of `${l}\n`) this.feed(c);
        this.refeeding = false;
      } else {
        this.wrapper?.setVerbatim(this.rawFence);
        this.emitRaw(lines.map((l) => `${l}\n`).join(""));
      }
      return;
    }
    const style = { color: this.color, bold: ANSI.bold, italic: ANSI.italic, code: ANSI.code, dim: ANSI.dim, reset: ANSI.reset };
    const rows = renderMarkdownTable(parseTableRow(lines[0]!), aligns, lines.slice(2).map(parseTableRow), this.width, style);
    this.wrapper?.setVerbatim(true);
    if (this.color) this.setStyle("");
    this.emitRaw(rows.map((r) => `${r}\n`).join(""));
    this.wrapper?.setVerbatim(false);
  }

  private flushAll(): void {
    if (!this.color) return;
    if (this.atLineStart && this.prefix) {
      const p = this.prefix;
      this.prefix = "";
      this.decide(p, true);
    }
    this.flushTable();
    if (this.codeLine && this.highlighter) this.emitCodeLine();
    this.flushLink();
    this.flushPending(" ");
    this.bold = this.italic = this.inlineCode = false;
    this.lineKind = "text";
    this.setStyle("");
  }

  private emitRaw(s: string): void {
    if (!s) return;
    this.out(s);
    this.lastNewline = s.endsWith("\n");
  }

  private setStyle(sgr: string): void {
    if (sgr === this.sgr) return;
    const nl = this.lastNewline;
    this.out(ANSI.reset + sgr);
    this.lastNewline = nl; // escape codes do not move the cursor
    this.sgr = sgr;
  }

  private emitText(s: string, sgr: string): void {
    this.setStyle(sgr);
    const nl = this.lastNewline;
    this.out(s);
    this.lastNewline = s.length ? s.endsWith("\n") : nl;
  }

  private inlineStyle(): string {
    let s = "";
    if (this.lineKind === "heading") s += ANSI.heading + ANSI.bold + (this.headingLevel === 1 ? ANSI.underline : "");
    if (this.lineKind === "quote") s += ANSI.dim;
    if (this.inlineCode) return s + ANSI.code;
    if (this.bold) s += ANSI.bold;
    if (this.italic) s += ANSI.italic;
    return s;
  }

  private feed(ch: string): void {
    if (this.atLineStart) {
      this.prefix += ch;
      const p = this.prefix;
      if (this.decide(p, ch === "\n")) this.prefix = "";
      return;
    }
    if (this.codeLine) {
      if (ch === "\n") {
        if (this.highlighter) this.emitCodeLine();
        this.newline();
      } else if (this.highlighter) this.codeBuf += ch;
      else this.emitText(ch, ANSI.code);
      return;
    }
    this.inline(ch);
  }

  /** Try to classify the start of a line; returns false to hold on for more characters. */
  private decide(p: string, final: boolean): boolean {
    this.wrapper?.setVerbatim(this.inFence);
    const indent = /^[ \t]*/.exec(p)![0];
    const t = p.slice(indent.length);
    const eol = t.endsWith("\n");
    const body = eol ? t.slice(0, -1) : t;
    if (this.inFence) {
      const m = /^(`+|~+)/.exec(body);
      const isFenceStart = body === "" || (m && m[1]![0] === this.fenceChar);
      if (isFenceStart && !final) {
        if (body === "" && !eol) return false; // only indentation so far
        if (body.length < this.fenceLen && this.fenceChar.repeat(body.length) === body) return false;
        if (m && m[1]!.length >= this.fenceLen && !eol) return false; // a closing fence needs the whole line
      }
      if (m && m[1]![0] === this.fenceChar && m[1]!.length >= this.fenceLen && body.slice(m[1]!.length).trim() === "") {
        this.inFence = false;
        this.highlighter = undefined;
        this.emitText(indent + body, ANSI.dim);
        if (eol) this.newline();
        else this.atLineStart = false;
        return true;
      }
      this.codeLine = true;
      this.atLineStart = false;
      if (this.highlighter) {
        this.codeBuf = indent + body;
        if (eol) this.emitCodeLine();
      } else this.emitText(indent + body, ANSI.code);
      if (eol) this.newline();
      return true;
    }
    if (body === "" && !eol && !final) return false;
    // a table row (held whole: a table is drawn when it is complete); any other line ends the table
    if (this.width && !this.refeeding) {
      if (isTableLine(indent + body)) {
        if (!eol && !final) return false;
        this.tableLines.push(indent + body);
        return true;
      }
      if (this.tableLines.length) {
        // the held rows go through feed() again: out of the way of this line's start
        const held = this.prefix;
        this.prefix = "";
        this.flushTable();
        this.prefix = held;
      }
    }
    // code fence
    const fence = /^(`{3,}|~{3,})(.*)$/.exec(body);
    if (fence || /^(`{1,2}|~{1,2})$/.test(body)) {
      if (!eol && !final) return false;
      if (fence && !(fence[1]![0] === "`" && fence[2]!.includes("`"))) {
        this.inFence = true;
        const lang = resolveLanguage(fence[2]!);
        this.highlighter = lang ? new LineHighlighter(lang) : undefined;
        this.fenceChar = fence[1]![0]!;
        this.fenceLen = fence[1]!.length;
        this.emitText(indent + body, ANSI.dim);
        if (eol) this.newline();
        else this.atLineStart = false;
        return true;
      }
    }
    // heading
    const hashes = /^(#{1,6})(.?)/.exec(body);
    if (hashes) {
      if (hashes[2] === "" && !eol && !final && body.length < 7) return false;
      if (hashes[2] === " " || hashes[2] === "") {
        this.lineKind = "heading";
        this.headingLevel = hashes[1]!.length;
        this.startInline(indent, t.slice(hashes[0].length));
        return true;
      }
    }
    // thematic break (---, ***, ___), bullet (-, *, + and a space), or emphasis at the line start
    if (/^[-*_+]/.test(body)) {
      const bullet = /^[-*+][ \t]/.test(body);
      if (!eol && !final && !bullet && /^[-*_+ \t]*$/.test(body)) return false;
      if ((eol || final) && /^([-*_])\1{2,}$/.test(body.replace(/[ \t]/g, ""))) {
        this.emitText(indent + "─".repeat(40), ANSI.dim);
        if (eol) this.newline();
        else this.atLineStart = false;
        return true;
      }
      if (bullet) {
        this.emitText(indent, "");
        this.emitText("•", ANSI.bullet);
        this.startInline("", t.slice(1));
        return true;
      }
    }
    // ordered list
    if (/^\d{1,9}[.)]?$/.test(body) && !eol && !final) return false;
    const ol = /^(\d{1,9}[.)])[ \t]/.exec(body);
    if (ol) {
      this.emitText(indent, "");
      this.emitText(ol[1]!, ANSI.bullet);
      this.startInline("", t.slice(ol[1]!.length));
      return true;
    }
    // block quote
    if (body.startsWith(">")) {
      this.lineKind = "quote";
      this.emitText(indent, "");
      this.emitText("│", ANSI.dim);
      this.startInline("", t.slice(1));
      return true;
    }
    this.startInline(indent, t);
    return true;
  }

  /** A code line of a block in a language we colour, now that it is complete. */
  private emitCodeLine(): void {
    const line = this.codeBuf;
    this.codeBuf = "";
    this.emitText(this.highlighter!.line(line), ANSI.code);
  }

  private startInline(indent: string, rest: string): void {
    this.atLineStart = false;
    this.prev = " ";
    if (indent) this.emitText(indent, this.inlineStyle());
    for (const ch of rest) this.inline(ch);
  }

  private newline(): void {
    this.flushPending("\n");
    this.bold = this.italic = this.inlineCode = false;
    this.lineKind = "text";
    this.headingLevel = 0;
    this.codeLine = false;
    this.setStyle("");
    this.emitText("\n", "");
    this.atLineStart = true;
    this.prev = " ";
  }

  private inline(ch: string): void {
    if (this.link !== undefined) {
      this.feedLink(ch);
      return;
    }
    if (ch === "\n") {
      this.newline();
      return;
    }
    if (this.pending) {
      if (ch === this.pending[0] && this.pending.length < 3) {
        this.pending += ch;
        return;
      }
      this.flushPending(ch);
    }
    if (this.inlineCode) {
      if (ch === "`") {
        this.inlineCode = false;
        this.prev = ch;
        return;
      }
      this.emitText(ch, this.inlineStyle());
      this.prev = ch;
      return;
    }
    if (ch === "*" || ch === "_" || ch === "`") {
      this.pending = ch;
      return;
    }
    if (ch === "[") {
      this.link = "[";
      return;
    }
    this.emitText(ch, this.inlineStyle());
    this.prev = ch;
  }

  /** Hold a possible [text](url) until it closes (then show text underlined and the url dimmed) or cannot be one. */
  private feedLink(ch: string): void {
    const buf = this.link + ch;
    const done = /^\[([^\]\n]*)\]\(([^)\s]*)\)$/.exec(buf);
    if (done) {
      this.link = undefined;
      const style = this.inlineStyle();
      this.emitText(done[1]!, style + ANSI.underline);
      if (done[2] && done[2] !== done[1]) this.emitText(` (${done[2]})`, style + ANSI.dim);
      this.prev = ")";
      return;
    }
    if (buf.length < 500 && /^\[[^\]\n]*(\]|\]\([^)\s]*)?$/.test(buf)) {
      this.link = buf;
      return;
    }
    this.flushLink(ch);
  }

  /** Not a link after all: the held text goes through as ordinary text, then `next`. */
  private flushLink(next?: string): void {
    const held = this.link;
    if (held === undefined) return;
    this.link = undefined;
    this.emitText("[", this.inlineStyle());
    this.prev = "[";
    for (const c of held.slice(1)) this.inline(c);
    if (next !== undefined) this.inline(next);
  }

  /** Decide what a held run of markers was, now that the next character is known. */
  private flushPending(next: string): void {
    const run = this.pending;
    if (!run) return;
    this.pending = "";
    const c = run[0]!;
    const prevSpace = /\s/.test(this.prev);
    const nextSpace = /\s/.test(next);
    if (c === "`") {
      if (run.length <= 2 && (!nextSpace || next === " ")) {
        this.inlineCode = true;
        this.prev = c;
        return;
      }
      this.emitText(run, this.inlineStyle());
      this.prev = c;
      return;
    }
    const alnum = /[\p{L}\p{N}]/u;
    const canOpen = !nextSpace && (c === "*" || !alnum.test(this.prev));
    const canClose = !prevSpace && (c === "*" || !alnum.test(next));
    const toggle = (on: boolean) => (on ? canClose : canOpen);
    if (run.length === 2 && toggle(this.bold)) this.bold = !this.bold;
    else if (run.length === 1 && toggle(this.italic)) this.italic = !this.italic;
    else if (run.length === 3 && toggle(this.bold) && toggle(this.italic)) {
      this.bold = !this.bold;
      this.italic = !this.italic;
    } else {
      this.emitText(run, this.inlineStyle());
    }
    this.prev = c;
  }
}

export { ANSI };
