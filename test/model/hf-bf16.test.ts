// The HF bf16 checkpoint of the fixture, quantized by us, against the fixture's MLX checkpoint of the same model.
// The fixture's MLX scales are hand-picked (k/4 * 2^e) and many groups leave codes unused, while MLX's quantizer
// always derives the scale from the group's min and max: groups using the full code range must come out bit-identical,
// and every dequantized value within one quantization step (clipping at the far end of MLX's zero-anchored grid)
// plus the bf16 rounding of the scale times the largest code.
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "pathe";
import { extractWeights, type WeightsManifest } from "../../lib/model/extract.ts";
import type { ExpertsLayout } from "../../lib/model/expert-layout.ts";
import { bf16ToF32, dequantizeAffine, toFloat32 } from "../../lib/model/quantize.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { FIXTURE, FIXTURE_HF, makeTempDir, removeDir } from "./_helpers.ts";

const tmp = makeTempDir();
afterAll(() => removeDir(tmp));

interface Q {
  q: Uint32Array;
  s: Uint16Array;
  b: Uint16Array;
  rows: number;
  cols: number;
  bits: number;
}

/** Compare our quantization with the reference group by group; returns counts and the worst error in scale units. */
function compareQuantized(ours: Q, ref: Q) {
  expect([ours.rows, ours.cols, ours.bits]).toEqual([ref.rows, ref.cols, ref.bits]);
  const { rows, cols, bits } = ref;
  const wo = dequantizeAffine(ours.q, ours.s, ours.b, rows, cols, bits, 64);
  const wr = dequantizeAffine(ref.q, ref.s, ref.b, rows, cols, bits, 64);
  const ipg = (64 * bits) / 32;
  const mask = (1 << bits) - 1;
  let full = 0;
  let fullSame = 0;
  let worstSteps = 0;
  let worstAbs = 0;
  for (let g = 0; g < ref.s.length; g++) {
    let lo = mask;
    let hi = 0;
    let same = ours.s[g] === ref.s[g] && ours.b[g] === ref.b[g];
    for (let j = 0; j < ipg; j++) {
      const word = ref.q[g * ipg + j]!;
      if (word !== ours.q[g * ipg + j]) same = false;
      for (let k = 0; k < 32 / bits; k++) {
        const c = (word >>> (bits * k)) & mask;
        lo = Math.min(lo, c);
        hi = Math.max(hi, c);
      }
    }
    if (lo === 0 && hi === mask) {
      full++;
      if (same) fullSame++;
    }
    // one step of the far-end clipping, plus the bf16 rounding of the scale multiplied by the largest code
    const step = Math.abs(bf16ToF32(ours.s[g]!)) * (1 + mask / 512);
    for (let i = g * 64; i < g * 64 + 64; i++) {
      const d = Math.abs(wo[i]! - wr[i]!);
      worstAbs = Math.max(worstAbs, d);
      worstSteps = Math.max(worstSteps, d / step);
    }
  }
  return { full, fullSame, worstSteps, worstAbs, groups: ref.s.length };
}

describe("HF bf16 source quantized at extraction vs the MLX checkpoint", async () => {
  const mlxDir = join(tmp, "mlx");
  const hfDir = join(tmp, "hf");
  await extractWeights({ checkpointDir: FIXTURE, outDir: mlxDir });
  await extractWeights({ checkpointDir: FIXTURE_HF, outDir: hfDir });
  const load = (d: string) => {
    const m: WeightsManifest = JSON.parse(readFileSync(join(d, "model_weights.json"), "utf8"));
    const bin = readFileSync(join(d, "model_weights.bin"));
    const map = new Map(m.tensors.map((t) => [t.name, t]));
    const bytes = (name: string) => {
      const t = map.get(name)!;
      return new Uint8Array(bin.buffer.slice(bin.byteOffset + t.offset, bin.byteOffset + t.offset + t.size));
    };
    const quant = (module: string): Q => {
      const w = map.get(`${module}.weight`)!;
      return {
        q: new Uint32Array(bytes(`${module}.weight`).buffer), s: new Uint16Array(bytes(`${module}.scales`).buffer), b: new Uint16Array(bytes(`${module}.biases`).buffer),
        rows: w.shape[0]!, cols: (w.shape[1]! * 32) / w.bits!, bits: w.bits!,
      };
    };
    return { m, map, bytes, quant };
  };
  const mlx = load(mlxDir);
  const hf = load(hfDir);

  test("same tensors, shapes and bits; source recorded as hf-bf16 4-bit", () => {
    expect(hf.m.source).toMatchObject({ format: "hf-bf16", bits: 4, group_size: 64 });
    expect(hf.m.config).toEqual(mlx.m.config);
    expect([...hf.map.keys()]).toEqual([...mlx.map.keys()]);
    for (const [name, t] of mlx.map) {
      const h = hf.map.get(name)!;
      expect([name, h.shape, h.bits, h.group_size]).toEqual([name, t.shape, t.bits, t.group_size]);
      const isNorm = /(layernorm|q_norm|k_norm|model\.norm)\.weight$/.test(name);
      expect([name, h.dtype]).toEqual([name, isNorm ? "F32" : t.dtype]);
    }
  });

  test("unquantized tensors have exactly the MLX values (norms as 1 + w in F32, conv as [C, K, 1])", () => {
    let n = 0;
    for (const [name, t] of mlx.map) {
      if (t.bits || name.endsWith(".scales") || name.endsWith(".biases")) continue;
      const a = toFloat32(mlx.bytes(name), t.dtype);
      const b = toFloat32(hf.bytes(name), hf.map.get(name)!.dtype);
      expect([name, Array.from(b)]).toEqual([name, Array.from(a)]);
      n++;
    }
    expect(n).toBe(3 * 6 + 4 + 1); // linear layers: 2 norms, conv, A_log, dt_bias, gated norm; full: 2 norms, q/k norm; final norm
  });

  test("quantized tensors: every dequantized weight equals the MLX checkpoint's (the fixture's weights lie on 4/8-bit grids)", () => {
    let groups = 0;
    let worstAbs = 0;
    for (const [name, t] of mlx.map) {
      if (!t.bits) continue;
      const r = compareQuantized(hf.quant(name.slice(0, -7)), mlx.quant(name.slice(0, -7)));
      groups += r.groups;
      worstAbs = Math.max(worstAbs, r.worstAbs);
    }
    expect(groups).toBeGreaterThan(500);
    expect(worstAbs).toBe(0);
  });

  test("experts: same layout; every dequantized weight equals the MLX checkpoint's", async () => {
    const a = await repackExperts({ checkpointDir: FIXTURE, outDir: mlxDir });
    const b = await repackExperts({ checkpointDir: FIXTURE_HF, outDir: hfDir, verify: true });
    const la: ExpertsLayout = JSON.parse(readFileSync(join(a.dir, "layout.json"), "utf8"));
    const lb: ExpertsLayout = JSON.parse(readFileSync(join(b.dir, "layout.json"), "utf8"));
    expect(lb.components).toEqual(la.components);
    expect(lb.expert_size).toBe(la.expert_size);
    let groups = 0;
    let worstAbs = 0;
    for (const l of la.moe_layers) {
      const fa = readFileSync(join(a.dir, `layer_0${l}.bin`));
      const fb = readFileSync(join(b.dir, `layer_0${l}.bin`));
      for (let e = 0; e < la.num_experts; e++) {
        for (const p of ["gate_proj", "up_proj", "down_proj"]) {
          const get = (f: Buffer): Q => {
            const part = (x: string) => {
              const c = la.components.find((c) => c.name === `${p}.${x}`)!;
              const o = e * la.expert_size + c.offset;
              return { c, u: f.buffer.slice(f.byteOffset + o, f.byteOffset + o + c.size) };
            };
            const w = part("weight");
            return { q: new Uint32Array(w.u), s: new Uint16Array(part("scales").u), b: new Uint16Array(part("biases").u), rows: w.c.shape[0]!, cols: w.c.shape[1]! * 8, bits: 4 };
          };
          const r = compareQuantized(get(fb), get(fa));
          groups += r.groups;
          worstAbs = Math.max(worstAbs, r.worstAbs);
        }
      }
    }
    expect(groups).toBeGreaterThan(100);
    expect(worstAbs).toBe(0);
  });
});
