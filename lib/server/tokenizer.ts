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
  /** Ids of eos_token / pad-like end tokens named in tokenizer_config.json (e.g. <|im_end|>, <|endoftext|>). */
  readonly endTokenIds: number[];
  readonly config: Record<string, unknown>;
  readonly vocabSize: number;
}

const tokenName = (t: unknown): string | undefined =>
  typeof t === "string" ? t : t && typeof t === "object" && "content" in t ? String((t as { content: unknown }).content) : undefined;

export async function loadTokenizer(dir: string): Promise<ModelTokenizer> {
  const jsonPath = join(dir, "tokenizer.json");
  if (!existsSync(jsonPath))
    throw new UserError(`no tokenizer.json in ${dir}`, "the model folder must hold the checkpoint's tokenizer.json and tokenizer_config.json");
  const configPath = join(dir, "tokenizer_config.json");
  const config = existsSync(configPath) ? ((await Bun.file(configPath).json()) as Record<string, unknown>) : {};
  const tok = new Tokenizer(await Bun.file(jsonPath).json(), config);
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
    endTokenIds: [...endTokenIds],
    config,
    vocabSize,
  };
}
