// extract-weights: every non-expert tensor of a checkpoint into model_weights.bin (64-byte aligned) + model_weights.json.
import { closeSync, ftruncateSync, mkdirSync, rmSync } from "node:fs";
import { UserError } from "../errors.ts";
import { writeFileAtomic } from "../fs.ts";
import { artifactPaths } from "./artifacts.ts";
import { type Checkpoint, type DenseTensor, describeDense, type EngineConfig, loadCheckpoint, type SourceFormat } from "./checkpoint.ts";
import { assembleInto, openOutput, type Piece } from "./assemble.ts";
import { checkFreeDisk, commitFile } from "../fs.ts";
import { createFdCache, type FdCache, openForWrite, preadFull, pwriteFull, tmpName } from "./io.ts";
import { createProgress, type ProgressFn } from "../progress.ts";
import { quantizeAffine, type Quantized, toFloat32 } from "./quantize.ts";
import { createModelWorkerPool, defaultWorkerCount, type ModelWorkerPool } from "./workers.ts";

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
  /** O_DIRECT writes where the OS allows (default true) */
  direct?: boolean;
  /** worker threads for our quantization (HF sources; default: all cores when the work is large, else none) */
  workers?: number;
  /** source bytes quantized per block of rows (default 8 MiB; small values exercise the block path in tests) */
  quantBlockBytes?: number;
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

/** Rows quantized at a time: bounds memory for big matrices (embeddings of 248k rows). */
const QUANT_ROWS_BYTES = 8 << 20;

/** Write our quantization of a float matrix: its weight, scales and biases entries, in blocks of rows (in workers when given). */
async function writeQuantizedModule(
  fd: number, fds: FdCache, parts: Map<string, { t: DenseTensor; e: ManifestTensor }>, onBytes: (n: number) => void, pool?: ModelWorkerPool,
  blockBytes = QUANT_ROWS_BYTES,
): Promise<void> {
  const any = [...parts.values()][0]!.t.source as Extract<DenseTensor["source"], { kind: "quantize" }>;
  const { src, rows, cols, bits, groupSize } = any;
  const el = src.size / (rows * cols);
  const rowsPerBlock = Math.max(1, Math.floor(blockBytes / (cols * el)));
  const at = (part: string) => parts.get(part)!.e;
  const put = (r0: number, q: Quantized) => {
    for (const [part, a] of [["weight", q.q], ["scales", q.scales], ["biases", q.biases]] as const) {
      const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      pwriteFull(fd, bytes, at(part).offset + r0 * (at(part).size / rows));
      onBytes(bytes.length);
    }
  };
  const blocks: number[] = [];
  for (let r0 = 0; r0 < rows; r0 += rowsPerBlock) blocks.push(r0);
  if (pool && blocks.length > 1) {
    await Promise.all(
      blocks.map(async (r0) => {
        const n = Math.min(rowsPerBlock, rows - r0);
        put(r0, await pool.run<Quantized>({ op: "quantize", src, r0, n, cols, bits, groupSize }));
      }),
    );
    return;
  }
  for (const r0 of blocks) {
    const n = Math.min(rowsPerBlock, rows - r0);
    const raw = new Uint8Array(n * cols * el);
    preadFull(fds.get(src.file), raw, src.offset + r0 * cols * el, src.file);
    put(r0, quantizeAffine(toFloat32(raw, src.dtype), n, cols, bits, groupSize));
  }
}

/** 1 + w of a zero-centred norm weight, as F32. */
function plusOne(fds: FdCache, src: { file: string; offset: number; size: number; dtype: string }): Uint8Array {
  const raw = new Uint8Array(src.size);
  preadFull(fds.get(src.file), raw, src.offset, src.file);
  const w = toFloat32(raw, src.dtype);
  for (let i = 0; i < w.length; i++) w[i] = Math.fround(1 + w[i]!);
  return new Uint8Array(w.buffer);
}

/** Byte copies + computed tensors (HF sources), buffered writes; quantized modules in bounded row blocks. */
async function writeMixed(
  fd: number, dense: DenseTensor[], entries: ManifestTensor[], onBytes: (n: number) => void, pool?: ModelWorkerPool, blockBytes?: number,
): Promise<void> {
  const fds = createFdCache();
  try {
    const modules = new Map<string, Map<string, { t: DenseTensor; e: ManifestTensor }>>();
    dense.forEach((t, i) => {
      if (t.source.kind !== "quantize") return;
      const m = modules.get(t.source.src.name) ?? modules.set(t.source.src.name, new Map()).get(t.source.src.name)!;
      m.set(t.source.part, { t, e: entries[i]! });
    });
    const buf = new Uint8Array(16 << 20);
    for (let i = 0; i < dense.length; i++) {
      const t = dense[i]!;
      const e = entries[i]!;
      const s = t.source;
      if (s.kind === "copy") {
        const src = fds.get(s.src.file);
        for (let off = 0; off < t.size; off += buf.length) {
          const chunk = buf.subarray(0, Math.min(buf.length, t.size - off));
          preadFull(src, chunk, s.src.offset + off, s.src.file);
          pwriteFull(fd, chunk, e.offset + off);
          onBytes(chunk.length);
        }
      } else if (s.kind === "plus-one") {
        const bytes = plusOne(fds, s.src);
        pwriteFull(fd, bytes, e.offset);
        onBytes(bytes.length);
      } else if (s.part === "weight") {
        await writeQuantizedModule(fd, fds, modules.get(s.src.name)!, onBytes, pool, blockBytes);
      }
    }
  } finally {
    fds.close();
  }
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
  checkFreeDisk(opts.outDir, totalBytes, "model_weights.bin");
  const tmp = tmpName(paths.weightsBin);
  mkdirSync(opts.outDir, { recursive: true });
  const progress = createProgress("extract-weights", totalBytes, opts.onProgress);
  const allCopies = dense.every((t) => t.source.kind === "copy");
  const { fd, direct } = allCopies ? openOutput(tmp, opts.direct ?? true) : { fd: openForWrite(tmp), direct: false };
  try {
    if (allCopies) {
      // MLX sources: every tensor is a byte range; assemble the file in aligned windows (O_DIRECT, several in flight)
      const pieces: Piece[] = dense.map((t, i) => {
        const src = (t.source as Extract<DenseTensor["source"], { kind: "copy" }>).src;
        return { file: src.file, srcOffset: src.offset, size: t.size, dstOffset: entries[i]!.offset };
      });
      await assembleInto(fd, direct, totalBytes, pieces, { onBytes: (n) => progress.add(n) });
    } else {
      const quantBytes = dense.reduce((a, t) => a + (t.source.kind === "quantize" ? t.size : 0), 0);
      const nWorkers = opts.workers ?? (quantBytes > 32e6 ? defaultWorkerCount() : 0);
      const pool = nWorkers > 0 ? createModelWorkerPool(nWorkers) : undefined;
      try {
        await writeMixed(fd, dense, entries, (n) => progress.add(n), pool, opts.quantBlockBytes);
      } finally {
        pool?.close();
      }
      ftruncateSync(fd, totalBytes);
    }
    // the old manifest goes first: a crash between the two renames leaves no manifest, never a stale one
    rmSync(paths.weightsJson, { force: true });
    commitFile(fd, tmp, paths.weightsBin);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {}
    rmSync(tmp, { force: true });
    throw e;
  }
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

