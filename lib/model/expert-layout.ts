// Packed expert layout (packed_experts/layout.json): component order, offsets and sizes inside one expert, and how
// each component of expert E of a layer is produced from the checkpoint (a byte range, or computed).
import { UserError } from "../errors.ts";
import type { ExpertLayer, Projection, ProjectionSource, SourceFormat } from "./checkpoint.ts";
import { PROJECTIONS } from "./checkpoint.ts";
import { createFdCache, type FdCache, preadFull } from "./io.ts";
import { dequantizeAffine, type Quantized, quantizeAffine, requantizeAffine, toFloat32 } from "./quantize.ts";
import { DTYPE_BYTES } from "./safetensors.ts";

export const COMPONENT_ALIGN = 64;
export const EXPERT_ALIGN = 4096;
const PARTS = ["weight", "scales", "biases"] as const;
type Part = (typeof PARTS)[number];

export interface ExpertComponent {
  name: string;
  dtype: string;
  shape: number[];
  offset: number;
  size: number;
}

export interface LayoutLayer {
  layer: number;
  file: string;
  size: number;
  /** hash of the sources and layout this file was made from (resume check) */
  source_hash?: string;
}

export interface ExpertsLayout {
  format: "flashchat-experts";
  version: 1;
  bits: number;
  group_size: number;
  num_experts: number;
  hidden_size: number;
  moe_intermediate_size: number;
  expert_size: number;
  components: ExpertComponent[];
  layers: LayoutLayer[];
  /** every MoE layer of the model (a complete set has a file for each) */
  moe_layers: number[];
  source: { format: SourceFormat; repo: string };
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** Components of one expert at `bits`, each 64-byte aligned, and the expert size (rounded up to 4096). */
export function layoutComponents(layer: ExpertLayer, bits: number, groupSize: number, scaleDtype: string) {
  const components: ExpertComponent[] = [];
  let pos = 0;
  for (const p of PROJECTIONS) {
    const [rows, cols] = layer.shapes[p];
    if (cols % groupSize !== 0) throw new UserError(`${p}: input size ${cols} is not a multiple of the group size ${groupSize}`);
    for (const part of PARTS) {
      const shape = part === "weight" ? [rows, (cols * bits) / 32] : [rows, cols / groupSize];
      const dtype = part === "weight" ? "U32" : scaleDtype;
      const size = shape[0]! * shape[1]! * DTYPE_BYTES[dtype]!;
      pos = alignUp(pos, COMPONENT_ALIGN);
      components.push({ name: `${p}.${part}`, dtype, shape, offset: pos, size });
      pos += size;
    }
  }
  return { components, expertSize: alignUp(pos, EXPERT_ALIGN) };
}

/** A byte range of a source file. */
export interface SourceRange {
  file: string;
  offset: number;
  size: number;
}

/** How to make every expert of one layer at the target bits. */
export interface LayerPlan {
  layer: ExpertLayer;
  bits: number;
  groupSize: number;
  numExperts: number;
  components: ExpertComponent[];
  expertSize: number;
  /** byte copies possible (MLX source at the target bits): component c of expert e = ranges[c] shifted by e * stride */
  copy: { tensorOffset: number; stride: number; file: string }[] | null;
}

export function planLayer(layer: ExpertLayer, numExperts: number, bits: number, groupSize: number): LayerPlan {
  const srcs = PROJECTIONS.map((p) => layer.sources[p]);
  const allMlxSame = srcs.every((s) => s.kind === "mlx" && s.bits === bits && s.groupSize === groupSize);
  const scaleDtype = allMlxSame ? (srcs[0] as Extract<ProjectionSource, { kind: "mlx" }>).scales.dtype : "BF16";
  const { components, expertSize } = layoutComponents(layer, bits, groupSize, scaleDtype);
  let copy: LayerPlan["copy"] = null;
  if (allMlxSame) {
    copy = [];
    for (const s of srcs as Extract<ProjectionSource, { kind: "mlx" }>[]) {
      for (const part of PARTS) {
        const t = s[part];
        if (part !== "weight" && t.dtype !== scaleDtype) throw new UserError(`tensor ${t.name}: dtype ${t.dtype} differs from the other experts' ${scaleDtype}`);
        copy.push({ file: t.file, tensorOffset: t.offset, stride: t.size / numExperts });
      }
    }
    copy.forEach((c, i) => {
      if (c.stride !== components[i]!.size) throw new Error(`planLayer: component ${components[i]!.name} stride ${c.stride} != size ${components[i]!.size}`);
    });
  }
  return { layer, bits, groupSize, numExperts, components, expertSize, copy };
}

/** The float matrix of projection `p` of expert `e` (dequantized when the source is MLX). */
export function loadExpertFloat(src: ProjectionSource, shape: [number, number], e: number, numExperts: number, fds: FdCache): Float32Array {
  const [rows, cols] = shape;
  const read = (file: string, offset: number, size: number) => {
    const b = new Uint8Array(size);
    preadFull(fds.get(file), b, offset, file);
    return b;
  };
  if (src.kind === "mlx") {
    const slice = (t: { file: string; offset: number; size: number }) => read(t.file, t.offset + (e * t.size) / numExperts, t.size / numExperts);
    const q = slice(src.weight);
    const s = slice(src.scales);
    const b = slice(src.biases);
    return dequantizeAffine(
      new Uint32Array(q.buffer), new Uint16Array(s.buffer), new Uint16Array(b.buffer),
      rows, cols, src.bits, src.groupSize, src.scales.dtype as "BF16" | "F16",
    );
  }
  const t = src.kind === "hf-stacked" ? src.tensor : src.tensors[e]!;
  const el = DTYPE_BYTES[t.dtype]!;
  const offset = src.kind === "hf-stacked" ? t.offset + (e * t.shape[1]! + src.rowStart) * cols * el : t.offset;
  return toFloat32(read(t.file, offset, rows * cols * el), t.dtype);
}

/** Fill `out` (expertSize bytes, zeroed padding) with expert `e` of the plan's layer. */
export function buildExpert(plan: LayerPlan, e: number, out: Uint8Array, fds: FdCache): void {
  out.fill(0);
  if (plan.copy) {
    plan.copy.forEach((c, i) => {
      const comp = plan.components[i]!;
      preadFull(fds.get(c.file), out.subarray(comp.offset, comp.offset + comp.size), c.tensorOffset + e * c.stride, c.file);
    });
    return;
  }
  PROJECTIONS.forEach((p: Projection, pi) => {
    const [rows, cols] = plan.layer.shapes[p];
    const src = plan.layer.sources[p];
    let q: Quantized;
    if (src.kind === "mlx" && src.groupSize === plan.groupSize) {
      // MLX at other bits: requantize straight from the codes (same bytes as dequantize + quantize, much faster)
      const [cq, cs, cb] = [src.weight, src.scales, src.biases].map((t) => {
        const b = new Uint8Array(t.size / plan.numExperts);
        preadFull(fds.get(t.file), b, t.offset + e * b.length, t.file);
        return b;
      }) as [Uint8Array, Uint8Array, Uint8Array];
      q = requantizeAffine(
        new Uint32Array(cq.buffer), new Uint16Array(cs.buffer), new Uint16Array(cb.buffer),
        rows, cols, src.bits, plan.bits, plan.groupSize, src.scales.dtype as "BF16" | "F16",
      );
    } else q = quantizeAffine(loadExpertFloat(src, plan.layer.shapes[p], e, plan.numExperts, fds), rows, cols, plan.bits, plan.groupSize);
    const arrays = [q.q, q.scales, q.biases];
    for (let k = 0; k < 3; k++) {
      const comp = plan.components[pi * 3 + k]!;
      const a = arrays[k]!;
      out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), comp.offset);
    }
  });
}

/** Hash of everything a layer file depends on: layout and source byte ranges (file names, offsets, sizes). */
export function layerSourceHash(plan: LayerPlan): string {
  const srcs = PROJECTIONS.map((p) => {
    const s = plan.layer.sources[p];
    const r = (t: { file: string; offset: number; size: number; dtype: string }) => [t.file.split("/").pop(), t.offset, t.size, t.dtype];
    if (s.kind === "mlx") return [s.kind, s.bits, s.groupSize, r(s.weight), r(s.scales), r(s.biases)];
    if (s.kind === "hf-stacked") return [s.kind, s.rowStart, r(s.tensor)];
    return [s.kind, s.tensors.map(r)];
  });
  const key = JSON.stringify([plan.bits, plan.groupSize, plan.expertSize, plan.components, srcs]);
  return Bun.hash(key).toString(16).padStart(16, "0");
}

export { createFdCache };
