// The model's tokenizer (tokenizer.json + tokenizer_config.json, via @huggingface/tokenizers): encode prompts, decode ids;
// a cache of its tables (see loadTokenizer's cacheDir) makes the next start fast.
import { existsSync, readFileSync, statSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";
import { join } from "pathe";
import { UserError } from "../errors.ts";
import { writeFileAtomic } from "../fs.ts";

export interface ModelTokenizer {
  /** Plain encoding: every added token written in `text` becomes that token (for text we produced ourselves). */
  encode(text: string): number[];
  /**
   * Encode a rendered prompt whose content spans carry `sentinel` inside each control-token string (see
   * lib/server/prompt-tokens.ts): control tokens are matched only where the template wrote them; the sentinel
   * is dropped and marked content is tokenized as the characters it is.
   */
  encodeRendered(text: string, sentinel: string | undefined): number[];
  /** Added tokens that steer the conversation (special ones and <|...|> markers): never matched inside content. */
  readonly controlTokens: string[];
  /** Special tokens (<|im_end|>, ...) are skipped; <think>, <tool_call> are not special and come through. */
  decode(ids: number[]): string;
  tokenToId(token: string): number | undefined;
  /** The raw bytes a token stands for (byte-level tokenizers: exact, even for part of a character). */
  tokenBytes(id: number): number[];
  /** Ids of eos_token / pad-like end tokens named in tokenizer_config.json (e.g. <|im_end|>, <|endoftext|>). */
  readonly endTokenIds: number[];
  readonly config: Record<string, unknown>;
  readonly vocabSize: number;
  /** The most bytes of text one token stands for (bounds the tokens a text needs from below). */
  readonly maxTokenBytes: number;
}

/** GPT-2's byte-level alphabet: printable stand-in character -> the byte it encodes. */
function byteLevelTable(): Map<string, number> {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++)
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  return new Map(bs.map((b, i) => [String.fromCodePoint(cs[i]!), b]));
}

const isByteLevel = (d: unknown): boolean => {
  if (!d || typeof d !== "object") return false;
  const o = d as { type?: string; decoders?: unknown[] };
  return o.type === "ByteLevel" || (o.type === "Sequence" && !!o.decoders?.some(isByteLevel));
};

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const alternation = (words: string[]) =>
  words.length ? new RegExp(`(${[...words].sort((a, b) => b.length - a.length).map(escapeRegExp).join("|")})`, "u") : undefined;

/**
 * The tokenizer's own pipeline (split at added tokens, then normalizer -> pre-tokenizer -> model, as
 * @huggingface/tokenizers' encode does), except that control tokens are split out only where they appear whole:
 * a content span's control strings carry the sentinel, so they fall through to the model as plain text.
 */
function createRenderedEncoder(tok: Tokenizer, added: AddedToken[]) {
  const isControl = (t: AddedToken) => t.special === true || /^<\|.*\|>$/su.test(t.content);
  const byContent = new Map(added.map((t) => [t.content, t]));
  const controls = added.filter(isControl).map((t) => t.content);
  const controlRe = alternation(controls);
  const otherRe = alternation(added.filter((t) => !isControl(t)).map((t) => t.content));
  const unk = (tok.model as unknown as { unk_token_id?: number }).unk_token_id;

  const encodeText = (text: string, out: number[]) => {
    // the non-control added tokens (<think>, <tool_call>, ...) behave as in a plain encode
    const parts = otherRe ? text.split(otherRe) : [text];
    parts.forEach((part, i) => {
      if (!part) return;
      if (i % 2 === 1) {
        out.push(tok.token_to_id(part)!);
        return;
      }
      const normalized = tok.normalizer ? (tok.normalizer as unknown as (s: string) => string)(part) : part;
      if (!normalized) return;
      const words = tok.pre_tokenizer ? (tok.pre_tokenizer as unknown as (s: string, o: object) => string[])(normalized, { section_index: 0 }) : [normalized];
      for (const piece of (tok.model as unknown as (w: string[]) => string[])(words)) {
        const id = tok.token_to_id(piece) ?? unk;
        if (id !== undefined) out.push(id);
      }
    });
  };

  const encode = (text: string, sentinel: string | undefined): number[] => {
    const out: number[] = [];
    const parts = controlRe ? text.split(controlRe) : [text];
    for (let i = 0; i < parts.length; i++) {
      if (i % 2 === 1) {
        out.push(tok.token_to_id(parts[i]!)!);
        continue;
      }
      let part = sentinel ? parts[i]!.replaceAll(sentinel, "") : parts[i]!;
      const before = i > 0 ? byContent.get(parts[i - 1]!) : undefined;
      const after = i + 1 < parts.length ? byContent.get(parts[i + 1]!) : undefined;
      if (before?.rstrip) part = part.trimStart();
      if (after?.lstrip) part = part.trimEnd();
      encodeText(part, out);
    }
    return out;
  };
  return { encode, controls };
}

const tokenName = (t: unknown): string | undefined =>
  typeof t === "string" ? t : t && typeof t === "object" && "content" in t ? String((t as { content: unknown }).content) : undefined;

/** tokenizer.json as read: the parts loadTokenizer uses. */
interface TokenizerJson {
  decoder?: unknown;
  added_tokens?: AddedToken[];
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[]; unk_token?: string };
}

/**
 * The tokenizer cache: tokenizer.json (11 MB for Qwen) takes ~1 s of CPU to parse and to build the BPE tables from;
 * the cache keeps those tables as two NUL-joined string lists (vocabulary by id, BPE merge keys by rank) that load
 * in a tenth of that. One file per tokenizer content, named by its hash; the header repeats the file's size, mtime
 * and hash and the library version, and any mismatch falls back to tokenizer.json (and rewrites the cache).
 * Written to a temp name and renamed, so a reader never sees half of one.
 */
const CACHE_FORMAT = 1;
const TOKENIZERS_VERSION: string = (() => {
  try {
    return (require("@huggingface/tokenizers/package.json") as { version: string }).version;
  } catch {
    return "unknown";
  }
})();

interface CacheHeader {
  format: number;
  library: string;
  size: number;
  mtimeMs: number;
  hash: string;
  /** tokenizer.json with model.vocab and model.merges emptied */
  rest: TokenizerJson;
  nVocab: number;
  vocabChars: number;
  nRanks: number;
  vocabSize: number;
  maxTokenBytes: number;
}

/** The internals of @huggingface/tokenizers' BPE model that the cache fills in (the fields its constructor builds). */
interface BpeInternals {
  tokens_to_ids: Map<string, number>;
  vocab: string[];
  unk_token_id: number | undefined;
  bpe_ranks: Map<string, number>;
  merges: unknown[];
}

export const tokenizerCachePath = (cacheDir: string, hash: string) => join(cacheDir, "tokenizers", `${hash}.cache`);

/** The vocabulary by id and the BPE merge keys by rank, when the tokenizer is a BPE one the cache can hold; else undefined. */
function resolveCacheTables(json: TokenizerJson): { vocab: string[]; ranks: string[] } | undefined {
  const m = json.model;
  if (m?.type !== "BPE" || !m.vocab || !Array.isArray(m.merges)) return undefined;
  const entries = Object.entries(m.vocab);
  const vocab = new Array<string>(entries.length);
  for (const [token, id] of entries) {
    // ids 0..n-1, each once, and no NUL inside a token (NUL separates them in the cache)
    if (!Number.isInteger(id) || id < 0 || id >= entries.length || vocab[id] !== undefined || token.includes("\0")) return undefined;
    vocab[id] = token;
  }
  // the keys the BPE model looks merges up by (JSON text: a NUL inside is escaped, so NUL can separate them)
  const ranks = m.merges.map((x) => JSON.stringify(typeof x === "string" ? x.split(" ", 2) : x));
  return { vocab, ranks };
}

function writeTokenizerCache(path: string, header: Omit<CacheHeader, "vocabChars" | "nVocab" | "nRanks">, tables: { vocab: string[]; ranks: string[] }): void {
  const vocabText = tables.vocab.join("\0");
  const full: CacheHeader = { ...header, nVocab: tables.vocab.length, vocabChars: vocabText.length, nRanks: tables.ranks.length };
  writeFileAtomic(path, `${JSON.stringify(full)}\n${vocabText}${tables.ranks.join("\0")}`);
}

/** The Tokenizer built from a cache file, or undefined when the file is missing or does not match. */
function loadCachedTokenizer(path: string, key: Pick<CacheHeader, "size" | "mtimeMs" | "hash">, config: Record<string, unknown>): { tok: Tokenizer; header: CacheHeader } | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  const nl = text.indexOf("\n");
  let header: CacheHeader;
  try {
    header = JSON.parse(text.slice(0, nl)) as CacheHeader;
  } catch {
    return undefined;
  }
  if (header.format !== CACHE_FORMAT || header.library !== TOKENIZERS_VERSION || header.size !== key.size || header.mtimeMs !== key.mtimeMs || header.hash !== key.hash) return undefined;
  const body = text.slice(nl + 1);
  const vocab = body.slice(0, header.vocabChars).split("\0");
  const ranks = body.slice(header.vocabChars).split("\0");
  if (vocab.length !== header.nVocab || ranks.length !== header.nRanks) return undefined;
  // the constructor builds everything but the big tables from the rest of tokenizer.json; then the tables go in,
  // in the order its constructor uses: the model's vocabulary, its unknown token, then the added tokens over it
  const tok = new Tokenizer(header.rest, config);
  const model = tok.model as unknown as BpeInternals;
  const ids = new Map<string, number>();
  for (let i = 0; i < vocab.length; i++) ids.set(vocab[i]!, i);
  model.unk_token_id = header.rest.model?.unk_token === undefined ? undefined : ids.get(header.rest.model.unk_token);
  for (const t of header.rest.added_tokens ?? []) {
    ids.set(t.content, t.id);
    vocab[t.id] = t.content;
  }
  const bpeRanks = new Map<string, number>();
  for (let i = 0; i < ranks.length; i++) bpeRanks.set(ranks[i]!, i);
  model.tokens_to_ids = ids;
  model.vocab = vocab;
  model.bpe_ranks = bpeRanks;
  return { tok, header };
}

/**
 * The most bytes one token stands for, without building each token's bytes: a byte-level token is one byte per
 * character when every character is in the byte alphabet, else (and for other tokenizers) its UTF-8 length.
 */
function resolveMaxTokenBytes(
  tok: Tokenizer,
  vocabSize: number,
  byteTable: Map<string, number> | undefined,
  added: Map<number, string>,
  tokenBytes: (id: number) => number[],
): number {
  if (!byteTable) {
    let max = 0;
    for (let i = 0; i < vocabSize; i++) max = Math.max(max, tokenBytes(i).length);
    return max;
  }
  const inAlphabet = new Uint8Array(0x200);
  for (const ch of byteTable.keys()) inAlphabet[ch.codePointAt(0)!] = 1;
  const utf8 = new TextEncoder();
  const vocab = (tok.model as unknown as BpeInternals).vocab;
  let max = 0;
  for (let i = 0; i < vocabSize; i++) {
    const piece = added.get(i) ?? vocab[i];
    if (piece === undefined) continue;
    let n = added.has(i) ? -1 : piece.length;
    for (let j = 0; n >= 0 && j < piece.length; j++) {
      const c = piece.charCodeAt(j);
      if (c >= 0x200 || !inAlphabet[c]) {
        n = -1;
        break;
      }
    }
    max = Math.max(max, n >= 0 ? n : utf8.encode(piece).length);
  }
  return max;
}

export interface LoadTokenizerOptions {
  /** Folder for the tokenizer cache (the config's cache dir); none: always parse tokenizer.json. */
  cacheDir?: string;
  /** Write the cache when it is missing (default true; the server's prompt workers only read it, so two threads never write one file). */
  writeCache?: boolean;
  /** Called with "cache" or "tokenizer.json" (and whether the cache was written), for -v. */
  onLoaded?: (from: "cache" | "tokenizer.json", wroteCache: boolean) => void;
}

export async function loadTokenizer(dir: string, opts: LoadTokenizerOptions = {}): Promise<ModelTokenizer> {
  const jsonPath = join(dir, "tokenizer.json");
  if (!existsSync(jsonPath))
    throw new UserError(`no tokenizer.json in ${dir}`, "the model folder must hold the checkpoint's tokenizer.json and tokenizer_config.json");
  const configPath = join(dir, "tokenizer_config.json");
  const config = existsSync(configPath) ? ((await Bun.file(configPath).json()) as Record<string, unknown>) : {};
  const bytes = await Bun.file(jsonPath).bytes();
  const st = statSync(jsonPath);
  const key = { size: st.size, mtimeMs: st.mtimeMs, hash: Bun.hash(bytes).toString(16).padStart(16, "0") };
  const cachePath = opts.cacheDir ? tokenizerCachePath(opts.cacheDir, key.hash) : undefined;
  const cached = cachePath ? loadCachedTokenizer(cachePath, key, config) : undefined;

  let tok: Tokenizer;
  let json: TokenizerJson;
  let known: { vocabSize: number; maxTokenBytes: number } | undefined;
  let tables: ReturnType<typeof resolveCacheTables>;
  if (cached) {
    tok = cached.tok;
    json = cached.header.rest;
    known = cached.header;
  } else {
    json = JSON.parse(new TextDecoder().decode(bytes)) as TokenizerJson;
    tables = cachePath && opts.writeCache !== false ? resolveCacheTables(json) : undefined;
    tok = new Tokenizer(json, config);
  }
  const byteTable = isByteLevel(json.decoder) ? byteLevelTable() : undefined;
  const added = new Map((json.added_tokens ?? []).map((t) => [t.id, t.content]));
  const utf8 = new TextEncoder();
  const tokenBytes = (id: number): number[] => {
    const special = added.get(id);
    if (special !== undefined) return [...utf8.encode(special)];
    const piece = tok.id_to_token(id);
    if (piece === undefined) return [];
    if (byteTable) {
      const out: number[] = [];
      for (const ch of piece) {
        const b = byteTable.get(ch);
        if (b === undefined) return [...utf8.encode(piece)];
        out.push(b);
      }
      return out;
    }
    return [...utf8.encode(tok.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false }))];
  };
  const endTokenIds = new Set<number>();
  for (const name of [tokenName(config.eos_token), "<|im_end|>", "<|endoftext|>"]) {
    const id = name ? tok.token_to_id(name) : undefined;
    if (id !== undefined) endTokenIds.add(id);
  }
  const vocabSize = known?.vocabSize ?? tok.get_vocab(true).size;
  const encodeRendered = createRenderedEncoder(tok, json.added_tokens ?? []);
  let maxTokenBytes = known?.maxTokenBytes ?? 0;
  const resolveMax = () => (maxTokenBytes ||= resolveMaxTokenBytes(tok, vocabSize, byteTable, added, tokenBytes));
  let wrote = false;
  if (cachePath && tables) {
    const rest: TokenizerJson = { ...json, model: { ...json.model, vocab: {}, merges: [] } };
    try {
      writeTokenizerCache(cachePath, { format: CACHE_FORMAT, library: TOKENIZERS_VERSION, ...key, rest, vocabSize, maxTokenBytes: resolveMax() }, tables);
      wrote = true;
    } catch {
      // a cache that cannot be written (read-only disk, full) only costs the next start its speed
    }
  }
  opts.onLoaded?.(cached ? "cache" : "tokenizer.json", wrote);
  return {
    encode: (text) => tok.encode(text, { add_special_tokens: false }).ids,
    encodeRendered: encodeRendered.encode,
    controlTokens: encodeRendered.controls,
    decode: (ids) => (ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false })),
    tokenToId: (t) => tok.token_to_id(t),
    tokenBytes,
    endTokenIds: [...endTokenIds],
    config,
    vocabSize,
    get maxTokenBytes() {
      return resolveMax();
    },
  };
}
