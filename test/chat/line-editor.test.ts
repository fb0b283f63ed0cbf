import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { type Key, KeyParser } from "../../lib/chat/keys.ts";
import { EditBuffer, History, layoutInput } from "../../lib/chat/line-editor.ts";

const dir = mkdtempSync(join(tmpdir(), "fc-editor-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const names = (keys: Key[]) => keys.map((k) => ("text" in k ? `${k.name}:${k.text}` : k.name));

describe("key parser", () => {
  test("arrows, home/end, ctrl and alt keys", () => {
    const p = new KeyParser();
    expect(names(p.feed("\x1b[A\x1b[B\x1b[C\x1b[D\x1b[H\x1b[F\x1b[1~\x1b[4~\x1bOH\x1b[3~"))).toEqual([
      "up", "down", "right", "left", "home", "end", "home", "end", "home", "delete",
    ]);
    expect(names(p.feed("\x01\x05\x17\x0b\x15\x03\x04\x7f\x0c"))).toEqual([
      "home", "end", "delete-word-back", "kill-end", "kill-start", "interrupt", "eof", "backspace", "clear-screen",
    ]);
    expect(names(p.feed("\x1b\x7f\x1bb\x1bf\x1bd\x1b\r\n\x1b[1;5C\x1b[1;5D"))).toEqual([
      "delete-word-back", "word-left", "word-right", "delete-word-forward", "newline", "enter", "word-right", "word-left",
    ]);
  });

  test("printable text is grouped; enter ends it; UTF-8 passes through", () => {
    expect(names(new KeyParser().feed("héllo 世界\r"))).toEqual(["char:héllo 世界", "enter"]);
  });

  test("escape sequences and pastes split across chunks", () => {
    const p = new KeyParser();
    expect(names(p.feed("\x1b"))).toEqual([]);
    expect(names(p.feed("["))).toEqual([]);
    expect(names(p.feed("A"))).toEqual(["up"]);
    expect(names(p.feed("\x1b[20"))).toEqual([]);
    expect(names(p.feed("0~line one\r\nline"))).toEqual([]);
    expect(names(p.feed(" two\x1b[20"))).toEqual([]);
    expect(names(p.feed("1~x"))).toEqual(["paste:line one\nline two", "char:x"]);
  });

  test("a lone escape is reported after a quiet time", () => {
    const p = new KeyParser();
    expect(p.feed("\x1b")).toEqual([]);
    expect(names(p.flushEscape())).toEqual(["escape"]);
  });
});

function typing(buf: EditBuffer, ...keys: (string | Key["name"])[]) {
  const results: string[] = [];
  for (const k of keys) {
    const key: Key = k.length === 1 || k.startsWith("'") ? { name: "char", text: k.replace(/^'/, "") } : ({ name: k } as Key);
    results.push(buf.apply(key));
  }
  return results;
}

describe("editing", () => {
  test("insert, move, delete in the middle", () => {
    const b = new EditBuffer();
    typing(b, "'hello world", "left", "left", "left", "left", "left", "backspace", "'_");
    expect(b.text).toBe("hello_world");
    typing(b, "home", "'> ", "end", "'!");
    expect(b.text).toBe("> hello_world!");
    typing(b, "home", "delete", "delete");
    expect(b.text).toBe("hello_world!");
  });

  test("word delete back and forward, kill to end and start", () => {
    const b = new EditBuffer();
    typing(b, "'the quick  brown fox", "delete-word-back");
    expect(b.text).toBe("the quick  brown ");
    typing(b, "delete-word-back");
    expect(b.text).toBe("the quick  ");
    typing(b, "home", "word-right", "delete-word-forward");
    expect(b.text).toBe("the  ");
    typing(b, "home", "word-right", "kill-end");
    expect(b.text).toBe("the");
    typing(b, "left", "kill-start");
    expect([b.text, b.cursor]).toEqual(["e", 0]);
  });

  test("Ctrl-D: end of input on an empty line, delete otherwise", () => {
    const b = new EditBuffer();
    expect(typing(b, "eof")).toEqual(["eof"]);
    typing(b, "'ab", "home");
    expect(typing(b, "eof")).toEqual(["edit"]);
    expect(b.text).toBe("b");
  });

  test("multi-line: Alt-Enter, a trailing backslash, and a paste; up/down move between lines", () => {
    const b = new EditBuffer();
    expect(typing(b, "'line one\\", "enter", "'line two", "newline", "'3")).toEqual(["edit", "edit", "edit", "edit", "edit"]);
    expect(b.text).toBe("line one\nline two\n3");
    b.apply({ name: "paste", text: "\npasted\nlines" });
    expect(b.text).toBe("line one\nline two\n3\npasted\nlines");
    typing(b, "up", "up");
    expect(b.cursor).toBe("line one\nline two\n3".length); // column kept where the line is long enough
    typing(b, "up");
    expect(b.cursor).toBe("line one\nl".length);
    typing(b, "down");
    typing(b, "home", "'> ");
    expect(b.text.split("\n")[2]).toBe("> 3");
    expect(typing(b, "enter")).toEqual(["submit"]);
  });

  test("history: up/down walk past entries and come back to the draft; kept across runs", () => {
    const path = join(dir, "history");
    const h = new History(path);
    h.add("first");
    h.add("two\nlines");
    h.add("two\nlines"); // no duplicate in a row
    h.add("  "); // no blanks
    const again = new History(path);
    expect(again.entries).toEqual(["first", "two\nlines"]);
    const b = new EditBuffer(again);
    typing(b, "'draft", "up");
    expect(b.text).toBe("two\nlines");
    typing(b, "up"); // cursor is on the last line of the entry: first moves up inside it
    typing(b, "up");
    expect(b.text).toBe("first");
    typing(b, "up");
    expect(b.text).toBe("first");
    typing(b, "down", "down", "down");
    expect(b.text).toBe("draft");
  });

  test("history survives a torn last line and stays bounded", () => {
    const path = join(dir, "history2");
    writeFileSync(path, '"a"\n"b"\n');
    appendFileSync(path, '"c');
    const h = new History(path, 3);
    expect(h.entries).toEqual(["a", "b"]);
    h.add("d");
    h.add("e");
    expect(h.entries).toEqual(["b", "d", "e"]);
    expect(new History(path, 3).entries).toEqual(["b", "d", "e"]);
    expect(readFileSync(path, "utf8")).toBe('"b"\n"d"\n"e"\n');
  });
});

describe("layout", () => {
  test("one short line", () => {
    expect(layoutInput("> ", "… ", [..."hi"], 1, 80)).toEqual({ text: "> hi", rows: 1, cursorRow: 0, cursorCol: 3, endsAtEdge: false });
  });
  test("wrapped and multi-line text, cursor on the second logical line", () => {
    const chars = [..."abcdefghij\nxy"];
    const l = layoutInput("> ", ". ", chars, chars.length, 6);
    expect(l.text).toBe("> abcdefghij\n. xy");
    expect(l.rows).toBe(3);
    expect([l.cursorRow, l.cursorCol]).toEqual([2, 4]);
  });
  test("text ending exactly at the edge gets an extra row", () => {
    const l = layoutInput("> ", ". ", [..."abcd"], 4, 6);
    expect(l).toEqual({ text: "> abcd\n", rows: 2, cursorRow: 1, cursorCol: 0, endsAtEdge: true });
  });
  test("wide characters count double", () => {
    expect(layoutInput("> ", ". ", [..."世界"], 2, 80).cursorCol).toBe(6);
  });
});
