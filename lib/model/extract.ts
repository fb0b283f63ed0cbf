// extract-weights: every non-expert tensor of a checkpoint into model_weights.bin (64-byte aligned) + model_weights.json.
import { ftruncateSync } from "node:fs";
import { UserError } from "../errors.ts";
import { writeFileAtomic } from "../fs.ts";
import { artifactPaths } from "./artifacts.ts";
import { type Checkpoint, type DenseTensor, describeDense, type EngineConfig, loadCheckpoint, type SourceFormat } from "./checkpoint.ts";
import { checkFreeSpace, commitFile, createFdCache, type FdCache, openForWrite, preadFull, pwriteFull, tmpName } from "./io.ts";
import { createProgress, type ProgressFn } from "./progress.ts";
import { quantizeAffine, type Quantized, toFloat32 } from "./quantize.ts";

export const WEIGHTS_ALIGN = 64;

export interface ManifestTensor {
  name: string;
  dtype: string;
  shape: number[];
  offset: number;
  size: number;
  bits?: number;
  group_size?: number;
}

export interface WeightsManifest {
  format: "flashchat-weights";
  version: 1;
  source: { format: SourceFormat; repo: string; bits: number; group_size: number };
  config: EngineConfig;
  tensors: ManifestTensor[];
}

export interface ExtractOptions {
  /** Absolute path of the checkpoint folder (config.json + safetensors). */
  checkpointDir: string;
  /** Artifacts folder; model_weights.bin/json are written there. */
  outDir: string;
  /** HF bf16 sources: bits of the quantized linears (2, 4 or 8; default 4). Ignored for MLX sources. */
  bits?: number;
  /** Written into the manifest as source.repo (default: checkpointDir). */
  repo?: string;
  onProgress?: ProgressFn;
}

export interface ExtractResult {
  weightsBin: string;
  weightsJson: string;
  bytes: number;
  tensors: number;
  seconds: number;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** Offsets for `dense` in order, each a multiple of 64; returns the manifest entries and the file size. */
export function layoutDense(dense: readonly DenseTensor[]): { entries: ManifestTensor[]; totalBytes: number } {
  let pos = 0;
  const entries = dense.map((t) => {
    pos = alignUp(pos, WEIGHTS_ALIGN);
    const e: ManifestTensor = { name: t.name, dtype: t.dtype, shape: t.shape, offset: pos, size: t.size };
    if (t.bits) {
      e.bits = t.bits;
      e.group_size = t.groupSize;
    }
    pos += t.size;
    return e;
  });
  return { entries, totalBytes: pos };
}

export function renderManifest(m: WeightsManifest): string {
  // one tensor per line: readable and diffable, still small for thousands of tensors
  const head = JSON.stringify({ format: m.format, version: m.version, source: m.source, config: m.config }, null, 2).slice(0, -2);
  return `${head},\n  "tensors": [\n${m.tensors.map((t) => `    ${JSON.stringify(t)}`).join(",\n")}\n  ]\n}\n`;
}

/** Bytes of a dense tensor that is not a plain copy: 1 + w as F32, or one part of our quantization of a float matrix. */
function computeTensor(t: DenseTensor, fds: FdCache, cache: { src?: string; q?: Quantized }): Uint8Array {
  const s = t.source;
  if (s.kind === "copy") throw new Error("computeTensor: copy source");
  if (s.kind === "plus-one") {
    const w = toFloat32(readSource(fds, s.src), s.src.dtype);
    for (let i = 0; i < w.length; i++) w[i] = Math.fround(1 + w[i]!);
    return new Uint8Array(w.buffer);
  }
  // the three parts of one module are adjacent in the output order: quantize once
  if (cache.src !== s.src.name || !cache.q) {
    cache.q = quantizeAffine(toFloat32(readSource(fds, s.src), s.src.dtype), s.rows, s.cols, s.bits, s.groupSize);
    cache.src = s.src.name;
  }
  const a = s.part === "weight" ? cache.q.q : s.part === "scales" ? cache.q.scales : cache.q.biases;
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function readSource(fds: FdCache, src: { file: string; offset: number; size: number }): Uint8Array {
  const raw = new Uint8Array(src.size);
  preadFull(fds.get(src.file), raw, src.offset, src.file);
  return raw;
}

/** Extract the dense tensors of the checkpoint at `checkpointDir` into `outDir`. Deterministic: same input, same bytes. */
export async function extractWeights(opts: ExtractOptions): Promise<ExtractResult> {
  const ckpt = loadCheckpoint(opts.checkpointDir);
  return extractFromCheckpoint(ckpt, opts);
}

export async function extractFromCheckpoint(ckpt: Checkpoint, opts: ExtractOptions): Promise<ExtractResult> {
  const bits = opts.bits ?? 4;
  if (![2, 4, 8].includes(bits)) throw new UserError(`--bits must be 2, 4 or 8, not ${opts.bits}`);
  const dense = describeDense(ckpt, { bits });
  const { entries, totalBytes } = layoutDense(dense);
  const paths = artifactPaths(opts.outDir);
  checkFreeSpace(opts.outDir, totalBytes, "model_weights.bin");
  const tmp = tmpName(paths.weightsBin);
  const fd = openForWrite(tmp);
  const fds = createFdCache();
  const progress = createProgress("extract-weights", totalBytes, opts.onProgress);
  const quantCache: { src?: string; q?: Quantized } = {};
  try {
    // plain copies in source order (sequential reads); computed tensors after
    const order = dense.map((t, i) => i);
    order.sort((a, b) => {
      const sa = dense[a]!.source.src;
      const sb = dense[b]!.source.src;
      return sa.file < sb.file ? -1 : sa.file > sb.file ? 1 : sa.offset - sb.offset;
    });
    const buf = new Uint8Array(16 << 20);
    for (const i of order) {
      const t = dense[i]!;
      const e = entries[i]!;
      const s = t.source;
      if (s.kind === "copy") {
        const src = fds.get(s.src.file);
        for (let off = 0; off < t.size; off += buf.length) {
          const chunk = buf.subarray(0, Math.min(buf.length, t.size - off));
          preadFull(src, chunk, s.src.offset + off, s.src.file);
          pwriteFull(fd, chunk, e.offset + off);
        }
      } else {
        const bytes = computeTensor(t, fds, quantCache);
        if (bytes.length !== t.size) throw new Error(`extract: ${t.name} computed ${bytes.length} bytes, expected ${t.size}`);
        pwriteFull(fd, bytes, e.offset);
      }
      progress.add(t.size);
    }
    ftruncateSync(fd, totalBytes);
    commitFile(fd, tmp, paths.weightsBin);
  } catch (e) {
    fds.close();
    throw e;
  }
  fds.close();
  const manifest: WeightsManifest = {
    format: "flashchat-weights",
    version: 1,
    source: {
      format: ckpt.format,
      repo: opts.repo ?? ckpt.dir,
      bits: ckpt.format === "mlx" ? ckpt.quant!.bits : bits,
      group_size: ckpt.format === "mlx" ? ckpt.quant!.groupSize : 64,
    },
    config: ckpt.config,
    tensors: entries,
  };
  writeFileAtomic(paths.weightsJson, renderManifest(manifest));
  return { weightsBin: paths.weightsBin, weightsJson: paths.weightsJson, bytes: totalBytes, tensors: entries.length, seconds: progress.elapsedSec() };
}

