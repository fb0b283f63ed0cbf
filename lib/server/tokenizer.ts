// The model's tokenizer (tokenizer.json + tokenizer_config.json, via @huggingface/tokenizers): encode prompts, decode ids.
import { existsSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";
import { join } from "pathe";
import { UserError } from "../errors.ts";

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

export async function loadTokenizer(dir: string): Promise<ModelTokenizer> {
  const jsonPath = join(dir, "tokenizer.json");
  if (!existsSync(jsonPath))
    throw new UserError(`no tokenizer.json in ${dir}`, "the model folder must hold the checkpoint's tokenizer.json and tokenizer_config.json");
  const configPath = join(dir, "tokenizer_config.json");
  const config = existsSync(configPath) ? ((await Bun.file(configPath).json()) as Record<string, unknown>) : {};
  const json = (await Bun.file(jsonPath).json()) as { decoder?: unknown; added_tokens?: AddedToken[] };
  const tok = new Tokenizer(json, config);
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
  const vocabSize = tok.get_vocab(true).size;
  const encodeRendered = createRenderedEncoder(tok, json.added_tokens ?? []);
  let maxTokenBytes = 0;
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
      if (maxTokenBytes === 0) for (let i = 0; i < vocabSize; i++) maxTokenBytes = Math.max(maxTokenBytes, tokenBytes(i).length);
      return maxTokenBytes;
    },
  };
}
