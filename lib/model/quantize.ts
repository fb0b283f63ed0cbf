// MLX affine quantization (2/4/8 bits, groups along the input dimension) and the bf16/f16 conversions it needs.
// quantizeAffine follows mlx/backend/cpu/quantized.cpp `quantize` step for step in float32 arithmetic:
// each group is anchored on its extreme of larger magnitude, so scales may be negative.

const f32 = Math.fround;
const F32_EPS = f32(1e-7);

const cvtBuf = new DataView(new ArrayBuffer(4));

export function bf16ToF32(h: number): number {
  cvtBuf.setUint32(0, h << 16, true);
  return cvtBuf.getFloat32(0, true);
}

/** float -> bf16 bits, round to nearest even (NaN stays NaN), as MLX/torch do. */
export function f32ToBf16(x: number): number {
  cvtBuf.setFloat32(0, x, true);
  const u = cvtBuf.getUint32(0, true);
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Precomputed bf16 -> f32 table (65536 entries): fast bulk conversion. */
let bf16Table: Float32Array | undefined;
export function bf16Lut(): Float32Array {
  if (!bf16Table) {
    const u = new Uint32Array(65536);
    for (let i = 0; i < 65536; i++) u[i] = i << 16;
    bf16Table = new Float32Array(u.buffer);
  }
  return bf16Table;
}

/** Convert raw little-endian floats (BF16, F16 or F32) to a Float32Array. */
export function toFloat32(bytes: Uint8Array, dtype: string): Float32Array {
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  if (dtype === "F32") return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4).slice();
  const src = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
  const out = new Float32Array(src.length);
  if (dtype === "BF16") {
    // a bf16 is the high half of a float32
    const out32 = new Uint32Array(out.buffer);
    for (let i = 0; i < src.length; i++) out32[i] = src[i]! << 16;
  } else if (dtype === "F16") {
    for (let i = 0; i < src.length; i++) out[i] = f16ToF32(src[i]!);
  } else throw new Error(`toFloat32: unsupported dtype ${dtype}`);
  return out;
}

const RNE_MAGIC = 6755399441055744; // 2^52 + 2^51: adding and subtracting it rounds a double to an integer, ties to even

/** Round half to even, like C rint() in the default rounding mode (exact for |x| < 2^51). */
export function rint(x: number): number {
  return x + RNE_MAGIC - RNE_MAGIC;
}

export interface Quantized {
  /** packed codes, [rows, cols * bits / 32] */
  q: Uint32Array;
  /** bf16 bits, [rows, cols / groupSize] */
  scales: Uint16Array;
  biases: Uint16Array;
}

/** Scratch for mlxGroupScaleBias: [scale, bias] (no allocation per group in the hot loops). */
const groupRule = new Float64Array(2);

/**
 * MLX's scale and bias of one group from its min and max: anchored on the extreme of larger magnitude (scale
 * negative when that is the max), then adjusted so the anchor is exactly representable. Result in groupRule.
 */
function mlxGroupScaleBias(wMin: number, wMax: number, nBins: number): void {
  const mask = Math.abs(wMin) > Math.abs(wMax);
  let scale = Math.max(f32(f32(wMax - wMin) / nBins), F32_EPS);
  if (!mask) scale = -scale;
  const edge = mask ? wMin : wMax;
  const q0 = rint(f32(edge / scale));
  let bias = 0;
  if (q0 !== 0) {
    scale = f32(edge / q0);
    bias = edge;
  }
  groupRule[0] = scale;
  groupRule[1] = bias;
}

/**
 * A group whose values already lie on an affine grid of at most 2^bits levels (weights that were quantized
 * before, e.g. a bf16 checkpoint made from a quantized one) is stored exactly: step = the smallest gap above
 * the minimum divided by j = 1, 2, ... until every value is min + k * step with k <= nBins, and step and min
 * are exact in bf16. Writes the group and returns true; false (nothing written) for ordinary weights, which
 * then take MLX's rounding path. Exactness is checked in double, where differences of floats are exact.
 */
function quantizeOnGrid(
  w: Float32Array, base: number, groupSize: number, wMin: number, wMax: number, nBins: number, bits: number,
  q: Uint32Array, qBase: number, scales: Uint16Array, biases: Uint16Array, g: number,
): boolean {
  if (!(wMax > wMin)) return false;
  let gap = Number.POSITIVE_INFINITY;
  for (let j = 0; j < groupSize; j++) {
    const d = w[base + j]! - wMin;
    if (d > 0 && d < gap) gap = d;
  }
  const biasBits = f32ToBf16(wMin);
  if (bf16ToF32(biasBits) !== wMin) return false;
  for (let div = 1; div <= nBins; div++) {
    const step = gap / div;
    if ((wMax - wMin) / step > nBins + 1e-9) return false;
    const stepBits = f32ToBf16(step);
    if (bf16ToF32(stepBits) !== step) continue;
    let ok = true;
    for (let j = 0; j < groupSize && ok; j++) {
      const k = Math.round((w[base + j]! - wMin) / step);
      ok = k * step === w[base + j]! - wMin && f32(k * step + wMin) === w[base + j]!;
    }
    if (!ok) continue;
    const elPerInt = 32 / bits;
    for (let j = 0; j < groupSize / elPerInt; j++) {
      let word = 0;
      for (let k = 0; k < elPerInt; k++) word |= Math.round((w[base + j * elPerInt + k]! - wMin) / step) << (k * bits);
      q[qBase + j] = word >>> 0;
    }
    scales[g] = stepBits;
    biases[g] = biasBits;
    return true;
  }
  return false;
}

/**
 * Quantize a row-major [rows, cols] matrix (cols % groupSize == 0) the way MLX does; groups already on a grid
 * of 2^bits levels are stored exactly instead (quantizeOnGrid).
 */
export function quantizeAffine(
  w: Float32Array,
  rows: number,
  cols: number,
  bits: number,
  groupSize: number,
  out?: Quantized,
  /** false: MLX's rounding for every group, even one already on a grid */
  exactGrid = true,
): Quantized {
  if (![2, 4, 8].includes(bits)) throw new Error(`quantizeAffine: bits must be 2, 4 or 8, not ${bits}`);
  if (cols % groupSize !== 0 || groupSize % (32 / bits) !== 0) throw new Error(`quantizeAffine: ${cols} columns do not split into groups of ${groupSize}`);
  const nGroups = (rows * cols) / groupSize;
  const elPerInt = 32 / bits;
  const intPerGroup = groupSize / elPerInt;
  const nBins = (1 << bits) - 1;
  const q = out?.q ?? new Uint32Array(nGroups * intPerGroup);
  const scales = out?.scales ?? new Uint16Array(nGroups);
  const biases = out?.biases ?? new Uint16Array(nGroups);
  for (let g = 0; g < nGroups; g++) {
    const base = g * groupSize;
    let wMin = Number.POSITIVE_INFINITY;
    let wMax = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < groupSize; j++) {
      const v = w[base + j]!;
      if (v > wMax) wMax = v;
      if (v < wMin) wMin = v;
    }
    const qBase = g * intPerGroup;
    if (exactGrid && quantizeOnGrid(w, base, groupSize, wMin, wMax, nBins, bits, q, qBase, scales, biases, g)) continue;
    mlxGroupScaleBias(wMin, wMax, nBins);
    const scale = groupRule[0]!;
    const bias = groupRule[1]!;
    for (let j = 0; j < intPerGroup; j++) {
      let word = 0;
      const at = base + j * elPerInt;
      for (let k = 0; k < elPerInt; k++) {
        let c = f32(f32(w[at + k]! - bias) / scale) + RNE_MAGIC - RNE_MAGIC;
        c = c < 0 ? 0 : c > nBins ? nBins : c;
        word |= c << (k * bits);
      }
      q[qBase + j] = word >>> 0;
    }
    scales[g] = f32ToBf16(scale);
    biases[g] = f32ToBf16(bias);
  }
  return { q, scales, biases };
}

/** w[o, i] = q[o, i] * scale + bias, in float32. Scales/biases as raw bf16 (or f16 with `dtype`) bits. */
export function dequantizeAffine(
  q: Uint32Array,
  scales: Uint16Array,
  biases: Uint16Array,
  rows: number,
  cols: number,
  bits: number,
  groupSize: number,
  dtype: "BF16" | "F16" = "BF16",
  out?: Float32Array,
): Float32Array {
  const w = out ?? new Float32Array(rows * cols);
  const elPerInt = 32 / bits;
  const mask = (1 << bits) - 1;
  const nGroups = (rows * cols) / groupSize;
  const intPerGroup = groupSize / elPerInt;
  const lut = bf16Lut();
  const cvt = dtype === "BF16" ? (h: number) => lut[h]! : f16ToF32;
  for (let g = 0; g < nGroups; g++) {
    const s = cvt(scales[g]!);
    const b = cvt(biases[g]!);
    let o = g * groupSize;
    for (let j = 0; j < intPerGroup; j++) {
      let word = q[g * intPerGroup + j]!;
      for (let k = 0; k < elPerInt; k++) {
        w[o++] = f32(f32((word & mask) * s) + b);
        word >>>= bits;
      }
    }
  }
  return w;
}

/**
 * Requantize affine-quantized rows from `fromBits` to `toBits` (same group size): exactly
 * quantizeAffine(dequantizeAffine(...)), but each group's few distinct values are computed once, so it costs a
 * table lookup per element instead of float arithmetic.
 */
export function requantizeAffine(
  q: Uint32Array,
  scales: Uint16Array,
  biases: Uint16Array,
  rows: number,
  cols: number,
  fromBits: number,
  toBits: number,
  groupSize: number,
  dtype: "BF16" | "F16" = "BF16",
): Quantized {
  if (![2, 4, 8].includes(toBits)) throw new Error(`requantizeAffine: bits must be 2, 4 or 8, not ${toBits}`);
  const nGroups = (rows * cols) / groupSize;
  const inPerWord = 32 / fromBits;
  const outPerWord = 32 / toBits;
  const inMask = (1 << fromBits) - 1;
  const nLevels = 1 << fromBits;
  const nBins = (1 << toBits) - 1;
  const out = new Uint32Array((rows * cols * toBits) / 32);
  const outScales = new Uint16Array(nGroups);
  const outBiases = new Uint16Array(nGroups);
  const lut = bf16Lut();
  const cvt = dtype === "BF16" ? (h: number) => lut[h]! : f16ToF32;
  const value = new Float64Array(nLevels);
  const present = new Uint8Array(nLevels);
  const map = new Uint32Array(nLevels);
  const codes = new Uint8Array(groupSize);
  for (let g = 0; g < nGroups; g++) {
    const s = cvt(scales[g]!);
    const b = cvt(biases[g]!);
    present.fill(0);
    const w0 = (g * groupSize) / inPerWord;
    for (let w = 0, j = 0; w < groupSize / inPerWord; w++) {
      let word = q[w0 + w]!;
      for (let k = 0; k < inPerWord; k++, j++) {
        const c = word & inMask;
        word >>>= fromBits;
        codes[j] = c;
        present[c] = 1;
      }
    }
    let wMin = Number.POSITIVE_INFINITY;
    let wMax = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < nLevels; k++) {
      if (!present[k]) continue;
      const v = f32(f32(k * s) + b); // as dequantizeAffine computes it
      value[k] = v;
      if (v > wMax) wMax = v;
      if (v < wMin) wMin = v;
    }
    // the quantizeAffine group rule, on the group's min and max
    mlxGroupScaleBias(wMin, wMax, nBins);
    const scale = groupRule[0]!;
    const bias = groupRule[1]!;
    for (let k = 0; k < nLevels; k++) {
      if (!present[k]) continue;
      let c = f32(f32(value[k]! - bias) / scale) + RNE_MAGIC - RNE_MAGIC;
      map[k] = c < 0 ? 0 : c > nBins ? nBins : c;
    }
    const o0 = (g * groupSize) / outPerWord;
    for (let j = 0, i = 0; j < groupSize / outPerWord; j++) {
      let word = 0;
      for (let k = 0; k < outPerWord; k++, i++) word |= map[codes[i]!]! << (k * toBits);
      out[o0 + j] = word >>> 0;
    }
    outScales[g] = f32ToBf16(scale);
    outBiases[g] = f32ToBf16(bias);
  }
  return { q: out, scales: outScales, biases: outBiases };
}
