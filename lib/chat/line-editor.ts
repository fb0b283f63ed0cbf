// The chat input line: editing (arrows, Ctrl-A/E, word delete, kill), history kept across runs,
// multi-line messages (Alt-Enter, a trailing backslash, or a paste) drawn over several rows.
import { existsSync, readFileSync } from "node:fs";
import { appendLineDurable, writeFileAtomic } from "../fs.ts";
import { type Key, KeyParser } from "./keys.ts";

export type ReadResult = { type: "line"; text: string } | { type: "interrupt"; text: string } | { type: "eof" };

/** Past inputs, one JSON string per line in a file (so multi-line entries survive), newest last. */
export class History {
  readonly entries: string[] = [];

  constructor(
    readonly path?: string,
    readonly max = 1000,
  ) {
    if (path && existsSync(path)) {
      for (const line of readFileSync(path, "utf8").split("\n")) {
        if (!line) continue;
        try {
          const v = JSON.parse(line);
          if (typeof v === "string" && v) this.entries.push(v);
        } catch {
          // a torn line from a crash: skip it
        }
      }
      if (this.entries.length > max) this.entries.splice(0, this.entries.length - max);
    }
  }

  add(entry: string): void {
    if (!entry.trim() || this.entries.at(-1) === entry) return;
    this.entries.push(entry);
    if (!this.path) return;
    if (this.entries.length > this.max) {
      this.entries.splice(0, this.entries.length - this.max);
      writeFileAtomic(this.path, this.entries.map((e) => JSON.stringify(e) + "\n").join(""), 0o600);
    } else appendLineDurable(this.path, JSON.stringify(entry));
  }
}

const isWordChar = (c: string | undefined) => c !== undefined && /[\p{L}\p{N}_]/u.test(c);

/** The text being edited and the cursor, with every editing operation. No I/O: unit-testable. */
export class EditBuffer {
  chars: string[] = [];
  cursor = 0;
  private historyIndex: number;
  private draft = "";

  constructor(readonly history: History = new History()) {
    this.historyIndex = history.entries.length;
  }

  get text(): string {
    return this.chars.join("");
  }

  set(text: string): void {
    this.chars = [...text];
    this.cursor = this.chars.length;
  }

  insert(text: string): void {
    const add = [...text];
    this.chars.splice(this.cursor, 0, ...add);
    this.cursor += add.length;
  }

  private lineStart(at = this.cursor): number {
    let i = at;
    while (i > 0 && this.chars[i - 1] !== "\n") i--;
    return i;
  }

  private lineEnd(at = this.cursor): number {
    let i = at;
    while (i < this.chars.length && this.chars[i] !== "\n") i++;
    return i;
  }

  private wordLeftIndex(): number {
    let i = this.cursor;
    while (i > 0 && !isWordChar(this.chars[i - 1])) i--;
    while (i > 0 && isWordChar(this.chars[i - 1])) i--;
    return i;
  }

  private wordRightIndex(): number {
    let i = this.cursor;
    while (i < this.chars.length && !isWordChar(this.chars[i])) i++;
    while (i < this.chars.length && isWordChar(this.chars[i])) i++;
    return i;
  }

  /** Apply one key. Returns what the caller must do: nothing more, submit the text, or stop reading. */
  apply(key: Key): "edit" | "submit" | "interrupt" | "eof" | "clear-screen" {
    switch (key.name) {
      case "char":
        this.insert(key.text);
        break;
      case "paste":
        this.insert(key.text);
        break;
      case "newline":
        this.insert("\n");
        break;
      case "enter":
        // a trailing backslash continues the message on a new line
        if (this.cursor === this.chars.length && this.chars.at(-1) === "\\") {
          this.chars[this.chars.length - 1] = "\n";
          break;
        }
        this.historyIndex = this.history.entries.length;
        return "submit";
      case "tab":
        this.insert("  ");
        break;
      case "backspace":
        if (this.cursor > 0) this.chars.splice(--this.cursor, 1);
        break;
      case "delete":
        if (this.cursor < this.chars.length) this.chars.splice(this.cursor, 1);
        break;
      case "eof":
        if (this.chars.length === 0) return "eof";
        if (this.cursor < this.chars.length) this.chars.splice(this.cursor, 1);
        break;
      case "left":
        if (this.cursor > 0) this.cursor--;
        break;
      case "right":
        if (this.cursor < this.chars.length) this.cursor++;
        break;
      case "home":
        this.cursor = this.lineStart();
        break;
      case "end":
        this.cursor = this.lineEnd();
        break;
      case "word-left":
        this.cursor = this.wordLeftIndex();
        break;
      case "word-right":
        this.cursor = this.wordRightIndex();
        break;
      case "delete-word-back": {
        const to = this.wordLeftIndex();
        this.chars.splice(to, this.cursor - to);
        this.cursor = to;
        break;
      }
      case "delete-word-forward": {
        const to = this.wordRightIndex();
        this.chars.splice(this.cursor, to - this.cursor);
        break;
      }
      case "kill-end": {
        const end = this.lineEnd();
        this.chars.splice(this.cursor, Math.max(1, end - this.cursor) * (this.cursor < this.chars.length ? 1 : 0));
        break;
      }
      case "kill-start": {
        const start = this.lineStart();
        this.chars.splice(start, this.cursor - start);
        this.cursor = start;
        break;
      }
      case "up": {
        const start = this.lineStart();
        if (start > 0) {
          // move up one line inside a multi-line message
          const col = this.cursor - start;
          const prevStart = this.lineStart(start - 1);
          this.cursor = Math.min(prevStart + col, start - 1);
        } else this.historyStep(-1);
        break;
      }
      case "down": {
        const end = this.lineEnd();
        if (end < this.chars.length) {
          const col = this.cursor - this.lineStart();
          const nextEnd = this.lineEnd(end + 1);
          this.cursor = Math.min(end + 1 + col, nextEnd);
        } else this.historyStep(1);
        break;
      }
      case "interrupt":
        return "interrupt";
      case "clear-screen":
        return "clear-screen";
      case "escape":
        break;
    }
    return "edit";
  }

  private historyStep(dir: -1 | 1): void {
    const n = this.history.entries.length;
    const next = this.historyIndex + dir;
    if (next < 0 || next > n) return;
    if (this.historyIndex === n) this.draft = this.text;
    this.historyIndex = next;
    this.set(next === n ? this.draft : this.history.entries[next]!);
  }
}

export interface Layout {
  /** What to write (prompt, text, continuation prompts). */
  text: string;
  /** Rows the text occupies; the cursor is left at the end of the last one. */
  rows: number;
  /** Where the editing cursor goes, relative to the first row. */
  cursorRow: number;
  cursorCol: number;
  /** The text ended exactly at the right edge: a newline was added so the end position is unambiguous. */
  endsAtEdge: boolean;
}

const width = (s: string) => Bun.stringWidth(s);

/** Lay out prompt + text on a terminal `cols` wide; continuation lines get `cont` in front. */
export function layoutInput(prompt: string, cont: string, chars: readonly string[], cursor: number, cols: number): Layout {
  const lines = chars.join("").split("\n");
  let text = "";
  let rows = 0;
  let cursorRow = 0;
  let cursorCol = 0;
  let seen = 0;
  lines.forEach((line, i) => {
    const pre = i === 0 ? prompt : cont;
    const w = width(pre) + width(line);
    const lineRows = Math.max(1, Math.ceil(w / cols));
    const lineLen = [...line].length;
    if (cursor >= seen && cursor <= seen + lineLen) {
      const wc = width(pre) + width([...line].slice(0, cursor - seen).join(""));
      cursorRow = rows + Math.floor(wc / cols);
      cursorCol = wc % cols;
    }
    seen += lineLen + 1;
    text += (i ? "\n" : "") + pre + line;
    rows += lineRows;
  });
  const lastW = width(lines.length === 1 ? prompt : cont) + width(lines.at(-1)!);
  const endsAtEdge = lastW > 0 && lastW % cols === 0;
  if (endsAtEdge) {
    text += "\n";
    rows += 1;
  }
  return { text, rows, cursorRow, cursorCol, endsAtEdge };
}

export interface Terminal {
  input: NodeJS.ReadStream;
  output: NodeJS.WriteStream;
}

/** Reads one message at a time from a terminal in raw mode. */
export class LineEditor {
  private readonly parser = new KeyParser();
  private typedAhead = "";

  constructor(
    readonly history: History,
    readonly term: Terminal = { input: process.stdin, output: process.stdout },
  ) {}

  /** Keys typed while no line was being read (e.g. during a reply): replayed at the next read(). */
  pushInput(data: string): void {
    this.typedAhead += data;
  }

  read(prompt: string, cont = "… ".padStart(width(prompt) > 2 ? width(prompt) : 2)): Promise<ReadResult> {
    const { input, output } = this.term;
    const buf = new EditBuffer(this.history);
    let drawnRow = 0; // row of the cursor within what is drawn, relative to its first row
    const cols = () => Math.max(10, output.columns || 80);
    const draw = () => {
      const l = layoutInput(prompt, cont, buf.chars, buf.cursor, cols());
      let s = drawnRow > 0 ? `\x1b[${drawnRow}A` : "";
      s += "\r\x1b[J" + l.text;
      const up = l.rows - 1 - l.cursorRow;
      if (up > 0) s += `\x1b[${up}A`;
      s += "\r" + (l.cursorCol > 0 ? `\x1b[${l.cursorCol}C` : "");
      output.write(s);
      drawnRow = l.cursorRow;
    };
    const finish = () => {
      // leave the cursor below the message
      buf.cursor = buf.chars.length;
      draw();
      output.write("\n");
    };
    return new Promise((resolvePromise) => {
      let escTimer: ReturnType<typeof setTimeout> | undefined;
      const done = (r: ReadResult) => {
        input.off("data", onData);
        input.off("end", onEnd);
        if (escTimer) clearTimeout(escTimer);
        output.write("\x1b[?2004l");
        input.setRawMode?.(false);
        input.pause();
        resolvePromise(r);
      };
      const handle = (keys: Key[]) => {
        for (const key of keys) {
          const r = buf.apply(key);
          if (r === "submit") {
            finish();
            const text = buf.text;
            this.history.add(text);
            return done({ type: "line", text });
          }
          if (r === "interrupt") {
            finish();
            return done({ type: "interrupt", text: buf.text });
          }
          if (r === "eof") {
            finish();
            return done({ type: "eof" });
          }
          if (r === "clear-screen") {
            output.write("\x1b[H\x1b[2J");
            drawnRow = 0;
          }
        }
        draw();
      };
      const onData = (data: Buffer | string) => {
        if (escTimer) clearTimeout(escTimer);
        handle(this.parser.feed(data.toString()));
        escTimer = setTimeout(() => {
          const keys = this.parser.flushEscape();
          if (keys.length) handle(keys);
        }, 50);
      };
      const onEnd = () => done({ type: "eof" });
      input.setRawMode?.(true);
      output.write("\x1b[?2004h");
      input.on("data", onData);
      input.on("end", onEnd);
      input.resume();
      draw();
      if (this.typedAhead) {
        const ahead = this.typedAhead;
        this.typedAhead = "";
        onData(ahead);
      }
    });
  }
}

/** Line-by-line input when stdin is not a terminal (scripts, pipes): each line is one message. */
export class PipeReader {
  private buffered = "";
  private lines: string[] = [];
  private ended = false;
  private waiting?: () => void;

  constructor(readonly input: NodeJS.ReadableStream = process.stdin) {
    input.on("data", (d: Buffer | string) => {
      this.buffered += d.toString();
      const parts = this.buffered.split("\n");
      this.buffered = parts.pop()!;
      this.lines.push(...parts.map((l) => l.replace(/\r$/, "")));
      this.waiting?.();
    });
    input.on("end", () => {
      if (this.buffered) this.lines.push(this.buffered);
      this.buffered = "";
      this.ended = true;
      this.waiting?.();
    });
  }

  async read(): Promise<ReadResult> {
    while (!this.lines.length && !this.ended) await new Promise<void>((r) => (this.waiting = r));
    this.waiting = undefined;
    const line = this.lines.shift();
    return line === undefined ? { type: "eof" } : { type: "line", text: line };
  }
}
