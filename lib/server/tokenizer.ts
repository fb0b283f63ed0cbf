// The model's tokenizer (tokenizer.json + tokenizer_config.json, via @huggingface/tokenizers): encode prompts, decode ids.
import { existsSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";
import { join } from "pathe";
import { UserError } from "../errors.ts";

export interface ModelTokenizer {
  encode(text: string): number[];
  /** Special tokens (<|im_end|>, ...) are skipped; <think>, <tool_call> are not special and come through. */
  decode(ids: number[]): string;
  tokenToId(token: string): number | undefined;
  /** The raw bytes a token stands for (byte-level tokenizers: exact, even for part of a character). */
  tokenBytes(id: number): number[];
  /** Ids of eos_token / pad-like end tokens named in tokenizer_config.json (e.g. <|im_end|>, <|endoftext|>). */
  readonly endTokenIds: number[];
  readonly config: Record<string, unknown>;
  readonly vocabSize: number;
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

const tokenName = (t: unknown): string | undefined =>
  typeof t === "string" ? t : t && typeof t === "object" && "content" in t ? String((t as { content: unknown }).content) : undefined;

export async function loadTokenizer(dir: string): Promise<ModelTokenizer> {
  const jsonPath = join(dir, "tokenizer.json");
  if (!existsSync(jsonPath))
    throw new UserError(`no tokenizer.json in ${dir}`, "the model folder must hold the checkpoint's tokenizer.json and tokenizer_config.json");
  const configPath = join(dir, "tokenizer_config.json");
  const config = existsSync(configPath) ? ((await Bun.file(configPath).json()) as Record<string, unknown>) : {};
  const json = (await Bun.file(jsonPath).json()) as { decoder?: unknown; added_tokens?: { id: number; content: string }[] };
  const tok = new Tokenizer(json, config);
  const byteTable = isByteLevel(json.decoder) ? byteLevelTable() : undefined;
  const added = new Map((json.added_tokens ?? []).map((t) => [t.id, t.content]));
  const utf8 = new TextEncoder();
  const tokenBytes = (id: number): number[] => {
    const special = added.get(id);
    if (special !== undefined) return [...utf8.encode(special)];
    const piece = tok.id_to_token(id);
    if (byteTable && piece !== undefined) {
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
  return {
    encode: (text) => tok.encode(text, { add_special_tokens: false }).ids,
    decode: (ids) => (ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false })),
    tokenToId: (t) => tok.token_to_id(t),
    tokenBytes,
    endTokenIds: [...endTokenIds],
    config,
    vocabSize,
  };
}
