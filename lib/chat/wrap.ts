// Word wrap for the terminal as text streams in: styled text (ANSI escapes count zero columns, wide characters
// two) broken at spaces so no word is split, except a word longer than the whole line. A wrapped line keeps
// the indentation of its first line (and the width of a list bullet or quote bar); verbatim parts (code, tables)
// pass through unchanged.

const ESC_SEQ = /^\x1b\[[0-9;?]*[A-Za-z]/;
/** What continuation lines are indented by: leading space, then a bullet, number or quote bar and its space. */
const HANGING = /^[ \t]*(?:(?:[•│>*+-]|\d{1,9}[.)])[ \t]+)?/;

export class WordWrapper {
  private col = 0;
  private word = "";
  private wordWidth = 0;
  private spaces = "";
  /** The start of the current line as shown (no escapes), for the hanging indent. */
  private lineStart = "";
  private verbatim = false;

  constructor(
    readonly width: number,
    private readonly out: (s: string) => void,
  ) {}

  /** Code and tables: no wrapping until turned off again. */
  setVerbatim(on: boolean): void {
    if (on === this.verbatim) return;
    this.flushWord();
    if (on) this.emitSpaces();
    this.verbatim = on;
  }

  write(s: string): void {
    for (let i = 0; i < s.length; i++) {
      const ch = s[i]!;
      if (ch === "\x1b") {
        const m = ESC_SEQ.exec(s.slice(i, i + 24));
        if (m) {
          if (this.verbatim) this.out(m[0]);
          else this.word += m[0];
          i += m[0].length - 1;
          continue;
        }
      }
      if (this.verbatim) {
        this.out(ch);
        if (ch === "\n") this.newLine();
        else this.col += Bun.stringWidth(ch);
        continue;
      }
      if (ch === "\n") {
        this.flushWord();
        this.spaces = ""; // trailing spaces would only push the cursor past the edge
        this.out("\n");
        this.newLine();
      } else if (ch === " " || ch === "\t") {
        this.flushWord();
        this.spaces += ch;
      } else {
        const code = ch.charCodeAt(0);
        const full = code >= 0xd800 && code <= 0xdbff && i + 1 < s.length ? ch + s[++i] : ch;
        this.word += full;
        this.wordWidth += Bun.stringWidth(full);
      }
    }
  }

  /** Write out the word held back (end of a reply). */
  flush(): void {
    this.flushWord();
    this.emitSpaces();
  }

  private newLine(): void {
    this.col = 0;
    this.lineStart = "";
  }

  private emitSpaces(): void {
    if (!this.spaces) return;
    this.out(this.spaces);
    this.col += this.spaces.replace(/\t/g, "    ").length;
    this.lineStart += this.spaces;
    this.spaces = "";
  }

  private flushWord(): void {
    if (!this.word) return;
    const word = this.word;
    const w = this.wordWidth;
    this.word = "";
    this.wordWidth = 0;
    const spacesW = this.spaces.replace(/\t/g, "    ").length;
    if (this.col > 0 && this.col + spacesW + w > this.width && this.col > spacesW) {
      this.spaces = "";
      this.breakLine();
    } else this.emitSpaces();
    if (w <= this.width - this.col) {
      this.out(word);
      this.col += w;
      if (this.lineStart.length < 16) this.lineStart += word.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
      return;
    }
    // longer than what is left of a fresh line: cut it at the edge, as few times as needed
    let piece = "";
    for (let i = 0; i < word.length; i++) {
      const m = word[i] === "\x1b" ? ESC_SEQ.exec(word.slice(i, i + 24)) : null;
      if (m) {
        piece += m[0];
        i += m[0].length - 1;
        continue;
      }
      const code = word.charCodeAt(i);
      const ch = code >= 0xd800 && code <= 0xdbff ? word.slice(i, ++i + 1) : word[i]!;
      const cw = Bun.stringWidth(ch);
      if (this.col + cw > this.width && this.col > 0) {
        this.out(piece);
        piece = "";
        this.breakLine();
      }
      piece += ch;
      this.col += cw;
      if (this.lineStart.length < 16) this.lineStart += ch;
    }
    this.out(piece);
  }

  /** A new line, indented as the current one hangs (never more than half the width). */
  private breakLine(): void {
    const hang = HANGING.exec(this.lineStart)![0].replace(/\t/g, "    ");
    const indent = " ".repeat(Math.min(Bun.stringWidth(hang), Math.floor(this.width / 2)));
    this.out(`\n${indent}`);
    this.col = indent.length;
    this.lineStart = indent;
  }
}
