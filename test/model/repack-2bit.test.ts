// --bits 2: the 4-bit experts requantized to 2 bits (MLX's algorithm) into packed_experts_2bit/, and the error it adds.
import { afterAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "pathe";
import type { ExpertsLayout } from "../../lib/model/expert-layout.ts";
import { bf16ToF32, dequantizeAffine } from "../../lib/model/quantize.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { FIXTURE, makeTempDir, removeDir } from "./_helpers.ts";

const tmp = makeTempDir();
afterAll(() => removeDir(tmp));

test("2-bit experts: layout, and error against the 4-bit weights within the documented bound", async () => {
  const r4 = await repackExperts({ checkpointDir: FIXTURE, outDir: tmp });
  const r2 = await repackExperts({ checkpointDir: FIXTURE, outDir: tmp, bits: 2, verify: true });
  expect(r2.dir).toBe(join(tmp, "packed_experts_2bit"));
  const l4: ExpertsLayout = JSON.parse(readFileSync(join(r4.dir, "layout.json"), "utf8"));
  const l2: ExpertsLayout = JSON.parse(readFileSync(join(r2.dir, "layout.json"), "utf8"));
  expect(l2).toMatchObject({ bits: 2, group_size: 64, num_experts: 8, expert_size: 8192 });
  expect(l2.components.find((c) => c.name === "down_proj.weight")).toMatchObject({ dtype: "U32", shape: [128, 4] });
  let se = 0;
  let ss = 0;
  let worst = 0;
  for (const L of l4.layers) {
    const f4 = readFileSync(join(r4.dir, L.file));
    const f2 = readFileSync(join(r2.dir, L.file));
    expect(f2.length).toBe(8 * 8192);
    for (let e = 0; e < 8; e++) {
      for (const p of ["gate_proj", "up_proj", "down_proj"]) {
        const load = (f: Buffer, lay: ExpertsLayout) => {
          const part = (x: string) => {
            const c = lay.components.find((c) => c.name === `${p}.${x}`)!;
            const o = e * lay.expert_size + c.offset;
            return { c, u: f.buffer.slice(f.byteOffset + o, f.byteOffset + o + c.size) };
          };
          const w = part("weight");
          const s = new Uint16Array(part("scales").u);
          const b = new Uint16Array(part("biases").u);
          return { s, b, w: dequantizeAffine(new Uint32Array(w.u), s, b, w.c.shape[0]!, (w.c.shape[1]! * 32) / lay.bits, lay.bits, 64) };
        };
        const a = load(f4, l4);
        const q = load(f2, l2);
        for (let g = 0; g < q.s.length; g++) {
          // per value: one 2-bit step (far-end clipping of the zero-anchored grid) + bf16 rounding of scale and bias
          const bound = Math.abs(bf16ToF32(q.s[g]!)) * (1 + 3 / 512) + Math.abs(bf16ToF32(q.b[g]!)) / 512 + 1e-6;
          for (let i = g * 64; i < g * 64 + 64; i++) {
            const d = Math.abs(a.w[i]! - q.w[i]!);
            worst = Math.max(worst, d / bound);
            se += d * d;
            ss += a.w[i]! ** 2;
          }
        }
      }
    }
  }
  expect(worst).toBeLessThanOrEqual(1);
  // measured on this fixture (Gaussian-like weights): relative RMS error 0.40 (documented in native/ARTIFACTS.md)
  const rel = Math.sqrt(se / ss);
  expect(rel).toBeGreaterThan(0.3);
  expect(rel).toBeLessThan(0.45);
});
