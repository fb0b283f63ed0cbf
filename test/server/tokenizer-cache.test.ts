// The tokenizer cache: a tokenizer loaded from it behaves exactly as one parsed from tokenizer.json, it is found by
// content (size, mtime, hash), a changed or damaged tokenizer.json or cache falls back to the JSON, and it is
// written atomically (no temp file left behind).
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { loadTokenizer, type ModelTokenizer } from "../../lib/server/tokenizer.ts";
import { writeTinyTokenizer } from "./_tiny-tokenizer.ts";

const QWEN3 = join(import.meta.dir, "../fixtures/qwen3-tokenizer");
const tmp = mkdtempSync(join(tmpdir(), "flashchat-tokcache-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SAMPLES = [
  "Hello, world!",
  "naïve café — ünïcödé",
  "中文字符和日本語のテキスト",
  "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
  "<think>\nx\n</think>\n\n<tool_call>\n{}\n</tool_call>",
  "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
  "  leading spaces, tabs\tand\nnewlines\r\n and 12345 digits 3.14159",
];

/** A copy of a tokenizer folder in the temp dir (so mtimes and contents can be changed). */
function copyTokenizer(from: string, name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) if (existsSync(join(from, f))) copyFileSync(join(from, f), join(dir, f));
  return dir;
}

/** The samples only (cheap): for the tests that load many times. */
const quick = (tok: ModelTokenizer) => ({ encode: SAMPLES.map((s) => tok.encode(s)), decode: SAMPLES.map((s) => tok.decode(tok.encode(s))), vocabSize: tok.vocabSize, maxTokenBytes: tok.maxTokenBytes });

const cacheFiles = (cacheDir: string) => (existsSync(join(cacheDir, "tokenizers")) ? readdirSync(join(cacheDir, "tokenizers")) : []);

/** Everything a tokenizer exposes, on the samples and over the whole vocabulary. */
function behaviour(tok: ModelTokenizer) {
  const ids = Array.from({ length: tok.vocabSize }, (_, i) => i);
  return {
    encode: SAMPLES.map((s) => tok.encode(s)),
    rendered: SAMPLES.map((s) => tok.encodeRendered(s, undefined)),
    decode: SAMPLES.map((s) => tok.decode(tok.encode(s))),
    bytes: ids.map((i) => tok.tokenBytes(i).join(",")),
    toId: ids.filter((i) => i % 37 === 0).map((i) => tok.tokenToId(tok.decode([i]))),
    endTokenIds: tok.endTokenIds,
    controlTokens: tok.controlTokens,
    vocabSize: tok.vocabSize,
    maxTokenBytes: tok.maxTokenBytes,
  };
}

describe.each([
  ["qwen3", () => copyTokenizer(QWEN3, "qwen3")],
  [
    "tiny 512",
    () => {
      const dir = join(tmp, "tiny");
      writeTinyTokenizer(dir);
      return dir;
    },
  ],
])("%s", (name, makeDir) => {
  const dir = makeDir();
  const cacheDir = join(tmp, `cache-${name}`);

  test("the first load parses tokenizer.json and writes the cache; the next loads from it and behaves the same", async () => {
    const seen: string[] = [];
    const plain = await loadTokenizer(dir);
    const first = await loadTokenizer(dir, { cacheDir, onLoaded: (from, wrote) => seen.push(`${from}${wrote ? " +cache" : ""}`) });
    expect(cacheFiles(cacheDir)).toHaveLength(1);
    expect(cacheFiles(cacheDir)[0]).toMatch(/^[0-9a-f]{16}\.cache$/);
    const cached = await loadTokenizer(dir, { cacheDir, onLoaded: (from, wrote) => seen.push(`${from}${wrote ? " +cache" : ""}`) });
    expect(seen).toEqual(["tokenizer.json +cache", "cache"]);
    const want = behaviour(plain);
    expect(behaviour(first)).toEqual(want);
    expect(behaviour(cached)).toEqual(want);
  }, 30_000); // parses the Qwen3 tokenizer.json twice: ~3.5 s on a quiet 2-core machine, more when it is busy
});

test("a changed tokenizer.json (content, or only its mtime) is parsed again, never served from the old cache", async () => {
  const dir = join(tmp, "changing");
  writeTinyTokenizer(dir);
  const cacheDir = join(tmp, "cache-changing");
  const from: string[] = [];
  const onLoaded = (f: string) => from.push(f);
  await loadTokenizer(dir, { cacheDir, onLoaded });
  // same bytes, new mtime: the cache's header no longer matches
  const later = new Date(Date.now() + 60_000);
  utimesSync(join(dir, "tokenizer.json"), later, later);
  await loadTokenizer(dir, { cacheDir, onLoaded });
  await loadTokenizer(dir, { cacheDir, onLoaded });
  // new content: another tokenizer, its own cache file
  const json = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
  const [word, id] = Object.entries(json.model.vocab as Record<string, number>).find(([w]) => /^[a-z]{4,}$/.test(w))!;
  delete json.model.vocab[word];
  json.model.vocab.hellø = id;
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(json));
  const changed = await loadTokenizer(dir, { cacheDir, onLoaded });
  expect(from).toEqual(["tokenizer.json", "tokenizer.json", "cache", "tokenizer.json"]);
  expect(changed.tokenToId("hellø")).toBe(id);
  expect(changed.tokenToId(word)).toBeUndefined();
  expect(cacheFiles(cacheDir)).toHaveLength(2);
  expect(cacheFiles(cacheDir).every((f) => f.endsWith(".cache"))).toBe(true); // no temp files left
});

test("a damaged cache file is ignored and rewritten", async () => {
  const dir = join(tmp, "damaged");
  writeTinyTokenizer(dir);
  const cacheDir = join(tmp, "cache-damaged");
  const plain = quick(await loadTokenizer(dir, { cacheDir }));
  const file = join(cacheDir, "tokenizers", cacheFiles(cacheDir)[0]!);
  for (const damage of [(t: string) => t.slice(0, t.length / 2), () => ""]) {
    writeFileSync(file, damage(readFileSync(file, "utf8")));
    const from: string[] = [];
    const tok = await loadTokenizer(dir, { cacheDir, onLoaded: (f) => from.push(f) });
    expect(from).toEqual(["tokenizer.json"]);
    expect(quick(tok)).toEqual(plain);
    const again: string[] = [];
    expect(quick(await loadTokenizer(dir, { cacheDir, onLoaded: (f) => again.push(f) }))).toEqual(plain);
    expect(again).toEqual(["cache"]);
  }
});

test("writeCache: false (the prompt workers) reads a cache but never writes one", async () => {
  const dir = join(tmp, "tiny-ro");
  writeTinyTokenizer(dir);
  const cacheDir = join(tmp, "cache-ro");
  const from: string[] = [];
  await loadTokenizer(dir, { cacheDir, writeCache: false, onLoaded: (f, wrote) => from.push(`${f} ${wrote}`) });
  expect(cacheFiles(cacheDir)).toEqual([]);
  await loadTokenizer(dir, { cacheDir });
  await loadTokenizer(dir, { cacheDir, writeCache: false, onLoaded: (f, wrote) => from.push(`${f} ${wrote}`) });
  expect(from).toEqual(["tokenizer.json false", "cache false"]);
});
