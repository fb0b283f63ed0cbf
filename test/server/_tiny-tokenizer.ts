// A byte-level BPE tokenizer (Qwen2 layout) with exactly 512 ids, for the 512-token fixture model:
// ids 0-255 bytes, 256-499 merges learnt from a short English text, 500-511 Qwen's special and tag tokens
// (<|im_end|> = 507 = the fixture's eos). With the real Qwen3 chat template, the fixture model then runs
// through the whole server: templates, tokenization, <think> and <tool_call> tags.
//   bun test/server/_tiny-tokenizer.ts OUT_DIR     (writes tokenizer.json + tokenizer_config.json)
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "pathe";

const CORPUS = `The quick brown fox jumps over the lazy dog. Hello, how are you today? I am fine, thank you.
You are a helpful assistant. The user asks a question and the assistant answers it with care.
What is the weather in Paris? Let me check the weather for you. It is sunny and warm in the city.
function call arguments name value parameter string number object array true false null
Think step by step. First, consider the question. Then, answer it clearly and briefly.
The answer is four. Two plus two is four. Hello world! This is a test of the tokenizer.
Streaming experts from the disk lets a large mixture of experts model run on one small machine.
Please write a short story about a robot who learns to paint beautiful pictures of mountains.
Yesterday we walked along the river, watched the boats, and talked about everything under the sun.
Numbers and symbols: (a + b) * c = d; [x, y] => {key: "value"} # comment // note.`;

export const SPECIAL_TOKENS = [
  "<|endoftext|>", "<|im_start|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
  "<tool_response>", "<|im_end|>", "</tool_response>", "<|reserved_0|>", "<|reserved_1|>", "<|reserved_2|>",
] as const;
const SPECIAL = new Set(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|reserved_0|>", "<|reserved_1|>", "<|reserved_2|>"]);

/** GPT-2's byte -> printable character table (what the ByteLevel pre-tokenizer uses). */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++)
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  const table: string[] = new Array(256);
  bs.forEach((b, i) => {
    table[b] = String.fromCodePoint(cs[i]!);
  });
  return table;
}

export function createTinyTokenizer(chatTemplate: string): { tokenizer: object; config: object } {
  const byteChars = bytesToUnicode();
  const vocab: Record<string, number> = {};
  byteChars.forEach((c, b) => {
    vocab[c] = b;
  });
  // words the way the pre-tokenizer splits them (a leading space stays with the word)
  const words = new Map<string, number>();
  for (const w of CORPUS.match(/ ?\p{L}+| ?\p{N}| ?[^\s\p{L}\p{N}]+|\s+/gu) ?? []) {
    const mapped = Array.from(new TextEncoder().encode(w), (b) => byteChars[b]).join("");
    words.set(mapped, (words.get(mapped) ?? 0) + 1);
  }
  let seqs = [...words].map(([w, n]) => ({ parts: Array.from(w), n }));
  const merges: [string, string][] = [];
  while (256 + merges.length < 500) {
    const counts = new Map<string, number>();
    for (const { parts, n } of seqs)
      for (let i = 0; i + 1 < parts.length; i++) {
        const k = `${parts[i]} ${parts[i + 1]}`;
        counts.set(k, (counts.get(k) ?? 0) + n);
      }
    let best = "";
    let bestN = 0;
    for (const [k, n] of counts) if (n > bestN || (n === bestN && k < best)) [best, bestN] = [k, n];
    if (!best) break;
    const [a, b] = best.split(" ") as [string, string];
    merges.push([a, b]);
    vocab[a + b] = 256 + merges.length - 1;
    seqs = seqs.map(({ parts, n }) => {
      const out: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(parts[i]!);
      }
      return { parts: out, n };
    });
  }
  if (256 + merges.length !== 500) throw new Error(`corpus too small: ${merges.length} merges`);
  const added = SPECIAL_TOKENS.map((content, i) => ({
    id: 500 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: SPECIAL.has(content),
  }));
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: "NFC" },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" }, behavior: "Isolated", invert: false },
        byteLevel,
      ],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  const config = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...t }) => [String(id), t])),
    bos_token: null,
    chat_template: chatTemplate,
    clean_up_tokenization_spaces: false,
    eos_token: "<|im_end|>",
    errors: "replace",
    model_max_length: 4096,
    pad_token: "<|endoftext|>",
    split_special_tokens: false,
    tokenizer_class: "Qwen2Tokenizer",
    unk_token: null,
  };
  return { tokenizer, config };
}

const QWEN3_CONFIG = join(import.meta.dir, "../fixtures/qwen3-tokenizer/tokenizer_config.json");

/** Write tokenizer.json + tokenizer_config.json (with the real Qwen3 chat template) into `dir`. */
export function writeTinyTokenizer(dir: string): void {
  const template = (JSON.parse(readFileSync(QWEN3_CONFIG, "utf8")) as { chat_template: string }).chat_template;
  const { tokenizer, config } = createTinyTokenizer(template);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2));
}

if (import.meta.main) writeTinyTokenizer(process.argv[2] ?? ".");
