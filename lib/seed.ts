// Sampling seeds: the range the engine takes (the JSON safe integers) and a fresh random one.

export const MAX_SEED = Number.MAX_SAFE_INTEGER;

/** A random sampling seed in [0, 2^53-1]. */
export function createRandomSeed(): number {
  const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
  return (hi! & 0x1fffff) * 2 ** 32 + lo!;
}
