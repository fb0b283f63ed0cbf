// Streaming Markdown for the terminal: text arrives in arbitrary chunks and is styled as it comes.
// Block syntax (code fences, headers, lists, quotes, rules) is decided at the start of each line,
// holding back only the few characters that are still ambiguous; inline markers (**, *, _, `) are
// held until the next character shows whether they open or close. With colour off the text passes
// through unchanged. Reasoning ("thinking") is printed dimmed, without Markdown.

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
}

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

  constructor(opts: MarkdownRendererOptions) {
    this.color = opts.color;
    // collect the pieces of one call and hand them over in one write (one syscall per chunk, not per character)
    this.out = (s: string) => void this.pieces.push(s);
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
      if (text) this.emitRaw(text);
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
    if (opts.newline !== false && !this.lastNewline) this.emitRaw("\n");
    this.flushOut();
  }

  private flushAll(): void {
    if (!this.color) return;
    if (this.atLineStart && this.prefix) {
      const p = this.prefix;
      this.prefix = "";
      this.decide(p, true);
    }
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
      if (ch === "\n") this.newline();
      else this.emitText(ch, ANSI.code);
      return;
    }
    this.inline(ch);
  }

  /** Try to classify the start of a line; returns false to hold on for more characters. */
  private decide(p: string, final: boolean): boolean {
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
        this.emitText(indent + body, ANSI.dim);
        if (eol) this.newline();
        else this.atLineStart = false;
        return true;
      }
      this.codeLine = true;
      this.atLineStart = false;
      this.emitText(indent + body, ANSI.code);
      if (eol) this.newline();
      return true;
    }
    if (body === "" && !eol && !final) return false;
    // code fence
    const fence = /^(`{3,}|~{3,})(.*)$/.exec(body);
    if (fence || /^(`{1,2}|~{1,2})$/.test(body)) {
      if (!eol && !final) return false;
      if (fence && !(fence[1]![0] === "`" && fence[2]!.includes("`"))) {
        this.inFence = true;
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
