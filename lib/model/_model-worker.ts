// Worker for the CPU-bound parts of extraction and repacking (our quantization): build or check a range of experts
// of a layer plan, or quantize a block of rows. Messages in: { id, op, ... }; out: { id, result } or { id, error }.
import { closeSync, openSync } from "node:fs";
import { buildExpert, type LayerPlan } from "./expert-layout.ts";
import { createFdCache, preadFull, pwriteFull } from "./io.ts";
import { quantizeAffine, toFloat32 } from "./quantize.ts";
import type { TensorInfo } from "./safetensors.ts";

declare const self: Worker;

export type WorkerRequest =
  /** write experts [from, to) of `plan` into `path` (already sized) */
  | { op: "build"; plan: LayerPlan; path: string; from: number; to: number }
  /** compare experts [from, to) of the file at `path` with the plan; result: first mismatch description or null */
  | { op: "check"; plan: LayerPlan; path: string; from: number; to: number }
  /** quantize rows [r0, r0 + n) of a float matrix [rows, cols]; result: the three arrays */
  | { op: "quantize"; src: TensorInfo; r0: number; n: number; cols: number; bits: number; groupSize: number };

const fds = createFdCache();

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

self.onmessage = (e: MessageEvent<WorkerRequest & { id: number }>) => {
  const { id, ...req } = e.data;
  try {
    if (req.op === "build") {
      const fd = openSync(req.path, "r+");
      try {
        const buf = new Uint8Array(req.plan.expertSize);
        for (let x = req.from; x < req.to; x++) {
          buildExpert(req.plan, x, buf, fds);
          pwriteFull(fd, buf, x * req.plan.expertSize);
          postMessage({ id, progress: req.plan.expertSize });
        }
      } finally {
        closeSync(fd);
      }
      postMessage({ id, result: null });
    } else if (req.op === "check") {
      const fd = openSync(req.path, "r");
      let bad: string | null = null;
      try {
        const want = new Uint8Array(req.plan.expertSize);
        const got = new Uint8Array(req.plan.expertSize);
        for (let x = req.from; x < req.to && !bad; x++) {
          buildExpert(req.plan, x, want, fds);
          preadFull(fd, got, x * req.plan.expertSize, req.path);
          const d = firstDiff(got, want);
          if (d >= 0) {
            const comp = req.plan.components.find((c) => d >= c.offset && d < c.offset + c.size);
            bad = `expert ${x}, ${comp ? `${comp.name} byte ${d - comp.offset}` : `padding byte ${d}`} (file offset ${x * req.plan.expertSize + d}): ${got[d]} instead of ${want[d]}`;
          }
        }
      } finally {
        closeSync(fd);
      }
      postMessage({ id, result: bad });
    } else {
      const { src, r0, n, cols, bits, groupSize } = req;
      const el = src.size / (src.shape.reduce((a, b) => a * b, 1));
      const raw = new Uint8Array(n * cols * el);
      preadFull(fds.get(src.file), raw, src.offset + r0 * cols * el, src.file);
      const q = quantizeAffine(toFloat32(raw, src.dtype), n, cols, bits, groupSize);
      postMessage({ id, result: q }, [q.q.buffer as ArrayBuffer, q.scales.buffer as ArrayBuffer, q.biases.buffer as ArrayBuffer]);
    }
  } catch (err) {
    const x = err as Error & { hint?: string };
    postMessage({ id, error: { message: x.message, hint: x.hint, user: x.name === "UserError", stack: x.stack } });
  }
};
