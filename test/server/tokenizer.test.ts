import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { createDetokenizer } from "../../lib/server/detokenizer.ts";
import { loadTokenizer } from "../../lib/server/tokenizer.ts";
import { writeTinyTokenizer } from "./_tiny-tokenizer.ts";

const QWEN3 = join(import.meta.dir, "../fixtures/qwen3-tokenizer");
const tmp = mkdtempSync(join(tmpdir(), "flashchat-tok-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const qwen = await loadTokenizer(QWEN3);
writeTinyTokenizer(tmp);
const tiny = await loadTokenizer(tmp);

const SAMPLES = ["Hello, world!", "naïve café — ünïcödé", "中文字符和日本語のテキスト", "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷", "<think>\nx\n</think>\n\n<tool_call>\n{}\n</tool_call>"];

describe.each([
  ["qwen3", qwen],
  ["tiny 512", tiny],
])("%s tokenizer", (_name, tok) => {
  test("encode/decode round-trips", () => {
    for (const s of SAMPLES) expect(tok.decode(tok.encode(s))).toBe(s);
  });
  test("end tokens and tags are single tokens; special tokens are skipped in output", () => {
    const imEnd = tok.tokenToId("<|im_end|>")!;
    expect(tok.endTokenIds).toContain(imEnd);
    for (const tag of ["<think>", "</think>", "<tool_call>", "</tool_call>"]) expect(tok.encode(tag)).toEqual([tok.tokenToId(tag)!]);
    expect(tok.decode([...tok.encode("ok"), imEnd])).toBe("ok");
  });
  test("incremental detokenization emits whole characters only, and the same text", () => {
    for (const s of SAMPLES) {
      const ids = tok.encode(s);
      const d = createDetokenizer(tok.decode);
      let out = "";
      for (const id of ids) {
        const delta = d.push(id);
        expect(delta).not.toContain("\uFFFD");
        out += delta;
      }
      out += d.flush();
      expect(out).toBe(s);
    }
  });
});

test("the tiny tokenizer has exactly the fixture's 512 ids, <|im_end|> = 507", () => {
  expect(tiny.vocabSize).toBe(512);
  expect(tiny.tokenToId("<|im_end|>")).toBe(507);
  // multi-byte characters are several byte tokens: the detokenizer must hold them back
  const ids = tiny.encode("😀");
  expect(ids.length).toBe(4);
  const d = createDetokenizer(tiny.decode);
  expect(ids.map((id) => d.push(id))).toEqual(["", "", "", "😀"]);
});

test("an invalid byte sequence still comes out (as U+FFFD) at the end", () => {
  const d = createDetokenizer(tiny.decode);
  // 0xF0 0x9F = the start of a 4-byte sequence, never completed
  const f0 = tiny.encode("😀")[0]!;
  expect(d.push(f0)).toBe("");
  expect(d.flush()).toContain("\uFFFD");
});

test("invalid bytes in the middle of a stream are not held back for long", () => {
  const d = createDetokenizer(tiny.decode);
  const f0 = tiny.encode("😀")[0]!; // a lead byte with no continuation
  const out: string[] = [];
  for (let i = 0; i < 12; i++) out.push(d.push(f0));
  expect(out.join("")).toContain("\uFFFD");
  expect(out.slice(0, 4).join("")).toBe("");
});
