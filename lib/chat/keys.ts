// Terminal input bytes -> key events: arrows, Home/End, Ctrl and Alt keys, bracketed paste.

export type Key =
  | { name: "char"; text: string }
  | { name: "paste"; text: string }
  | {
      name:
        | "enter"
        | "newline" // Alt-Enter: a new line inside the message
        | "backspace"
        | "delete"
        | "left"
        | "right"
        | "up"
        | "down"
        | "home"
        | "end"
        | "word-left"
        | "word-right"
        | "delete-word-back"
        | "delete-word-forward"
        | "kill-end"
        | "kill-start"
        | "clear-screen"
        | "interrupt"
        | "eof"
        | "tab"
        | "escape";
    };

const PASTE_START = "\x1b[200~";
const PASTE_END = "\x1b[201~";

const CSI: Record<string, Key["name"]> = {
  A: "up",
  B: "down",
  C: "right",
  D: "left",
  H: "home",
  F: "end",
  "1~": "home",
  "7~": "home",
  "4~": "end",
  "8~": "end",
  "3~": "delete",
  "1;5C": "word-right",
  "1;5D": "word-left",
  "1;3C": "word-right",
  "1;3D": "word-left",
  "3;5~": "delete-word-forward",
};

/** Stateful parser: feed() chunks as they arrive (an escape sequence or a paste may span chunks). */
export class KeyParser {
  private buf = "";
  private pasting = false;
  private paste = "";

  feed(chunk: string): Key[] {
    this.buf += chunk;
    const keys: Key[] = [];
    while (this.buf.length) {
      if (this.pasting) {
        const end = this.buf.indexOf(PASTE_END);
        if (end < 0) {
          // keep a possible partial end marker in the buffer
          const keep = partialSuffix(this.buf, PASTE_END);
          this.paste += this.buf.slice(0, this.buf.length - keep);
          this.buf = this.buf.slice(this.buf.length - keep);
          break;
        }
        this.paste += this.buf.slice(0, end);
        this.buf = this.buf.slice(end + PASTE_END.length);
        this.pasting = false;
        keys.push({ name: "paste", text: this.paste.replace(/\r\n?/g, "\n") });
        this.paste = "";
        continue;
      }
      const c = this.buf[0]!;
      if (c === "\x1b") {
        const r = this.escape();
        if (r === undefined) break; // incomplete: wait for more
        if (r) keys.push(r);
        continue;
      }
      this.buf = this.buf.slice(1);
      const code = c.charCodeAt(0);
      if (c === "\r") {
        // a \r\n pair from a pasting terminal without bracketed paste
        if (this.buf[0] === "\n") this.buf = this.buf.slice(1);
        keys.push({ name: "enter" });
      } else if (c === "\n") keys.push({ name: "enter" }); // Ctrl-J, or Enter typed ahead while the terminal was not raw
      else if (c === "\x7f" || c === "\b") keys.push({ name: "backspace" });
      else if (c === "\t") keys.push({ name: "tab" });
      else if (code < 32) {
        const ctrl: Record<number, Key["name"]> = {
          1: "home", // Ctrl-A
          2: "left", // Ctrl-B
          3: "interrupt", // Ctrl-C
          4: "eof", // Ctrl-D
          5: "end", // Ctrl-E
          6: "right", // Ctrl-F
          11: "kill-end", // Ctrl-K
          12: "clear-screen", // Ctrl-L
          14: "down", // Ctrl-N
          16: "up", // Ctrl-P
          21: "kill-start", // Ctrl-U
          23: "delete-word-back", // Ctrl-W
        };
        const name = ctrl[code];
        if (name) keys.push({ name } as Key);
      } else {
        // group printable text so a fast paste without bracketed paste stays cheap
        let text = c;
        while (this.buf.length && this.buf.charCodeAt(0) >= 32 && this.buf[0] !== "\x7f" && this.buf[0] !== "\x1b") {
          text += this.buf[0];
          this.buf = this.buf.slice(1);
        }
        keys.push({ name: "char", text });
      }
    }
    return keys;
  }

  /** A lone ESC that no more bytes followed: call after a short quiet time. */
  flushEscape(): Key[] {
    if (this.buf === "\x1b") {
      this.buf = "";
      return [{ name: "escape" }];
    }
    return [];
  }

  /** Parse an escape sequence at the start of buf; undefined = incomplete, null = ignored. */
  private escape(): Key | null | undefined {
    const b = this.buf;
    if (b.length < 2) return undefined;
    if (b.startsWith(PASTE_START)) {
      this.buf = b.slice(PASTE_START.length);
      this.pasting = true;
      return null;
    }
    if (PASTE_START.startsWith(b)) return undefined;
    const second = b[1]!;
    if (second === "[" || second === "O") {
      const m = /^\x1b[[O]([0-9;]*)([A-Za-z~])/.exec(b);
      if (!m) {
        if (/^\x1b[[O][0-9;]*$/.test(b)) return undefined;
        this.buf = b.slice(2);
        return null;
      }
      this.buf = b.slice(m[0].length);
      const name = CSI[m[1] + (m[2] === "~" ? "~" : m[2]!)] ?? CSI[m[1] ? `${m[1]}${m[2]}` : m[2]!];
      return name ? ({ name } as Key) : null;
    }
    this.buf = b.slice(2);
    // Alt + key
    if (second === "\r" || second === "\n") return { name: "newline" };
    if (second === "\x7f" || second === "\b") return { name: "delete-word-back" };
    if (second === "b") return { name: "word-left" };
    if (second === "f") return { name: "word-right" };
    if (second === "d") return { name: "delete-word-forward" };
    if (second === "\x1b") {
      this.buf = b.slice(1);
      return { name: "escape" };
    }
    return null;
  }
}

function partialSuffix(s: string, marker: string): number {
  for (let n = Math.min(marker.length - 1, s.length); n > 0; n--) if (marker.startsWith(s.slice(-n))) return n;
  return 0;
}
