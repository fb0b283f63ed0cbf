import { expect, test } from "bun:test";
import { bf16ToF32, dequantizeAffine, f16ToF32, f32ToBf16, quantizeAffine, requantizeAffine, rint, toFloat32 } from "../../lib/model/quantize.ts";

test("rint rounds half to even", () => {
  // (a zero result may lose its sign: irrelevant for codes, which are clamped to >= 0)
  expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6, 7.5, 8.5, -1e6 - 0.5].map(rint).map((x) => x + 0)).toEqual([0, 2, 2, 0, -2, -2, 2, -3, 8, 8, -1e6]);
});

test("bf16 conversions round to nearest even", () => {
  expect(f32ToBf16(1)).toBe(0x3f80);
  expect(f32ToBf16(-3)).toBe(0xc040);
  expect(f32ToBf16(3 / 11)).toBe(0x3e8c);
  expect(bf16ToF32(0x3e8c)).toBe(0.2734375);
  expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
  expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie -> even (up)
  expect(Number.isNaN(bf16ToF32(f32ToBf16(Number.NaN)))).toBe(true);
  expect(f16ToF32(0x3c00)).toBe(1);
  expect(f16ToF32(0xc000)).toBe(-2);
  expect(Array.from(toFloat32(new Uint8Array([0x80, 0x3f, 0x40, 0xc0]), "BF16"))).toEqual([1, -3]);
});

test("one group by hand: anchored on the larger-magnitude extreme, zero exact", () => {
  const w = new Float32Array(64);
  w[0] = -3;
  w[1] = 1;
  w[2] = 0;
  for (let i = 3; i < 64; i++) w[i] = -1 + (i % 7) * 0.25;
  const q = quantizeAffine(w, 1, 64, 4, 64);
  // scale 4/15 -> q0 = rint(-3 / (4/15)) = -11 -> scale = 3/11, bias = -3
  expect(q.scales[0]).toBe(f32ToBf16(3 / 11));
  expect(q.biases[0]).toBe(f32ToBf16(-3));
  const codes = Array.from({ length: 3 }, (_, i) => (q.q[0]! >>> (4 * i)) & 15);
  expect(codes).toEqual([0, 15, 11]);
  // positive extreme larger: negative scale
  const p = quantizeAffine(w.map((x) => -x), 1, 64, 4, 64);
  expect(bf16ToF32(p.scales[0]!)).toBeLessThan(0);
  expect(bf16ToF32(p.biases[0]!)).toBe(3);
});

test("round trip on random data: error within one step (+ bf16 rounding of scale and bias) at 2, 4 and 8 bits", () => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const rows = 16;
  const cols = 256;
  const w = new Float32Array(rows * cols).map(() => Math.fround(rnd() * rnd() * 2));
  for (const bits of [2, 4, 8]) {
    const q = quantizeAffine(w, rows, cols, bits, 64);
    expect(q.q.length).toBe((rows * cols * bits) / 32);
    const d = dequantizeAffine(q.q, q.scales, q.biases, rows, cols, bits, 64);
    const nBins = (1 << bits) - 1;
    let rmsErr = 0;
    for (let g = 0; g < q.scales.length; g++) {
      const s = Math.abs(bf16ToF32(q.scales[g]!));
      const b = Math.abs(bf16ToF32(q.biases[g]!));
      for (let i = g * 64; i < g * 64 + 64; i++) {
        expect(Math.abs(d[i]! - w[i]!)).toBeLessThanOrEqual(s * (1 + nBins / 512) + b / 512 + 1e-7);
        rmsErr += ((d[i]! - w[i]!) / s) ** 2;
      }
    }
    rmsErr = Math.sqrt(rmsErr / w.length);
    // most values are rounded to the nearest step: rms error well under half a step (uniform rounding: 0.29)
    expect(rmsErr).toBeLessThan(0.45);
  }
});

test("requantizeAffine = MLX's rule on dequantizeAffine(...), bit for bit, 4 -> 2 and 8 -> 4 bits", () => {
  let seed = 99;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const rows = 32;
  const cols = 256;
  for (const [from, to] of [[4, 2], [8, 4], [8, 2], [4, 4]] as const) {
    const src = quantizeAffine(new Float32Array(rows * cols).map(() => Math.fround(rnd() * rnd())), rows, cols, from, 64);
    // also groups whose codes use only part of the range, and a constant group
    src.q[5] = 0x33333333 >>> 0;
    src.q.fill(0, 0, (64 * from) / 32);
    const generic = quantizeAffine(dequantizeAffine(src.q, src.scales, src.biases, rows, cols, from, 64), rows, cols, to, 64, undefined, false);
    const fast = requantizeAffine(src.q, src.scales, src.biases, rows, cols, from, to, 64);
    expect(Array.from(fast.q)).toEqual(Array.from(generic.q));
    expect(Array.from(fast.scales)).toEqual(Array.from(generic.scales));
    expect(Array.from(fast.biases)).toEqual(Array.from(generic.biases));
  }
});

test("values already on a grid of 2^bits levels are stored exactly (lossless re-quantization), others as MLX rounds them", () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  for (const bits of [2, 4, 8]) {
    const levels = (1 << bits) - 1;
    const rows = 16;
    const cols = 128;
    // each group: (j + q) * scale, codes that often miss one or both extremes; every value exact in bf16
    // (3-bit scale mantissas, power-of-two scales at 8 bits, as in MLX-quantized checkpoints made exact)
    const w = new Float32Array(rows * cols);
    for (let g = 0; g < (rows * cols) / 64; g++) {
      const mant = bits === 8 ? 1 : (4 + Math.floor(Math.abs(rnd()) * 4)) / 4;
      const scale = mant * 2 ** -(4 + Math.floor(Math.abs(rnd()) * 4)) * (rnd() < 0 ? -1 : 1);
      const j0 = bits === 8 ? 0 : -Math.floor(Math.abs(rnd()) * (levels + 1));
      const hi = g % 3 === 0 ? levels - 1 : levels; // some groups never reach the top code
      for (let j = 0; j < 64; j++) w[g * 64 + j] = Math.fround((j0 + Math.floor(Math.abs(rnd()) * (hi + 1))) * scale);
    }
    const qz = quantizeAffine(w, rows, cols, bits, 64);
    expect(dequantizeAffine(qz.q, qz.scales, qz.biases, rows, cols, bits, 64)).toEqual(w);
    const mlx = quantizeAffine(w, rows, cols, bits, 64, undefined, false);
    const lossy = dequantizeAffine(mlx.q, mlx.scales, mlx.biases, rows, cols, bits, 64);
    if (bits < 8) expect(lossy).not.toEqual(w); // MLX's rounding alone does not recover every group
  }
  // ordinary weights (not on a grid) take MLX's path: identical output with or without exactGrid
  const plain = new Float32Array(8 * 128).map(() => Math.fround(rnd()));
  expect(quantizeAffine(plain, 8, 128, 4, 64)).toEqual(quantizeAffine(plain, 8, 128, 4, 64, undefined, false));
});
