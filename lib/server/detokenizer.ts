// Incremental detokenization: token ids in, text deltas out, never a broken UTF-8 sequence.
// A multi-byte character split across tokens decodes to U+FFFD until its last byte arrives; we hold
// the tail back until the decoded window stops ending in U+FFFD (the approach of HF text-generation-inference),
// decoding a small window so the tokenizer's own rules (byte-level, metaspace) apply unchanged.

export type DecodeFn = (ids: number[]) => string;

export interface Detokenizer {
  push(id: number): string;
  /** End of stream: whatever is held back (an incomplete sequence becomes U+FFFD). */
  flush(): string;
}

const MAX_HELD_TOKENS = 4;

export function createDetokenizer(decode: DecodeFn): Detokenizer {
  const ids: number[] = [];
  let prefixOffset = 0;
  let readOffset = 0;
  return {
    push(id) {
      ids.push(id);
      const prefix = decode(ids.slice(prefixOffset, readOffset));
      const full = decode(ids.slice(prefixOffset));
      // a UTF-8 sequence is at most 4 bytes: a U+FFFD still there after more tokens than that is a real invalid byte
      const stuck = ids.length - readOffset > MAX_HELD_TOKENS;
      if (full.length > prefix.length && (!full.endsWith("\uFFFD") || stuck)) {
        const delta = full.slice(prefix.length);
        prefixOffset = readOffset;
        readOffset = ids.length;
        return delta;
      }
      return "";
    },
    flush() {
      if (readOffset === ids.length) return "";
      const prefix = decode(ids.slice(prefixOffset, readOffset));
      const full = decode(ids.slice(prefixOffset));
      prefixOffset = readOffset = ids.length;
      return full.slice(prefix.length);
    },
  };
}
