// Decode ceilings of a model on this machine: the bytes one token must touch (dense weights + K experts per MoE layer,
// from the artifacts' manifests) over memory bandwidth, over disk bandwidth (cold cache), over the kernels' throughput.
import { existsSync, readFileSync } from "node:fs";
import { join } from "pathe";
import { UserError } from "../errors.ts";
import { formatNumber } from "./stats.ts";

interface ManifestTensor {
  name: string;
  shape: number[];
  size: number;
  bits?: number;
}

interface Manifest {
  config: { num_experts_per_tok: number; num_hidden_layers: number; tie_word_embeddings?: boolean; hidden_size: number };
  source?: { repo?: string; bits?: number };
  tensors: ManifestTensor[];
}

interface Layout {
  bits: number;
  expert_size: number;
  components: { size: number }[];
  layers: { layer: number }[];
}

export interface TokenBytes {
  /** dense bytes read per token: every non-expert tensor, but only one row of the embedding table */
  denseBytes: number;
  /** bytes of the K experts' weights used per token, all MoE layers (what the kernels consume) */
  expertBytesUsed: number;
  /** bytes read from the expert files per token (expert_size includes the 4 KiB alignment padding) */
  expertBytesRead: number;
  /** experts per token per layer */
  k: number;
  moeLayers: number;
  expertBits: number;
  /** bit width of the largest dense matrix (the lm_head, or the tied embedding); null when it is not quantized */
  denseBits: number | null;
  /** denseBytes + expertBytesUsed */
  totalBytes: number;
}

/**
 * The bytes one decoded token touches, from model_weights.json and <experts>/layout.json of an artifacts folder.
 * `k` overrides the model's experts per token (ACTIVE_EXPERTS).
 */
export function loadTokenBytes(artifactsDir: string, opts: { expertsDir?: string; k?: number | null } = {}): TokenBytes {
  const manifestPath = join(artifactsDir, "model_weights.json");
  const expertsDir = opts.expertsDir || join(artifactsDir, "packed_experts");
  const layoutPath = join(expertsDir, "layout.json");
  for (const p of [manifestPath, layoutPath]) {
    if (!existsSync(p)) throw new UserError(`no ${p}: not an artifacts folder`, "make one with extract-weights and repack-experts");
  }
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
  const layout = JSON.parse(readFileSync(layoutPath, "utf8")) as Layout;
  return resolveTokenBytes(manifest, layout, opts.k ?? undefined);
}

/** loadTokenBytes on already-parsed manifests. */
export function resolveTokenBytes(manifest: Manifest, layout: Layout, k = manifest.config.num_experts_per_tok): TokenBytes {
  const tied = Boolean(manifest.config.tie_word_embeddings);
  let denseBytes = 0;
  for (const t of manifest.tensors) {
    // an embedding lookup reads one row of each of weight/scales/biases; a tied lm_head reads the whole table anyway
    if (t.name.startsWith("model.embed_tokens.") && !tied) denseBytes += Math.ceil(t.size / Math.max(1, t.shape[0] ?? 1));
    else denseBytes += t.size;
  }
  const head = manifest.tensors.find((t) => t.name === (tied ? "model.embed_tokens.weight" : "lm_head.weight"));
  const moeLayers = layout.layers.length;
  const used = layout.components.reduce((a, c) => a + c.size, 0);
  const expertBytesUsed = k * moeLayers * used;
  return {
    denseBytes,
    expertBytesUsed,
    expertBytesRead: k * moeLayers * layout.expert_size,
    k,
    moeLayers,
    expertBits: layout.bits,
    denseBits: head?.bits ?? null,
    totalBytes: denseBytes + expertBytesUsed,
  };
}

export interface Bandwidths {
  /** memory read bandwidth with the threads the engine computes with, GB/s */
  memoryGBs: number;
  /** cold sequential disk read, GB/s; null when it could not be measured */
  diskGBs: number | null;
  /** quantized matrix-vector throughput of one core, GB/s of weights consumed (reported by the engine); null = unknown */
  kernelGBsPerCore?: number | null;
  /** compute threads the engine used */
  threads?: number;
}

export interface Ceilings {
  /** tok/s if every byte came from RAM at the memory bandwidth (warm page cache) */
  memory: number;
  /** tok/s when the experts come from disk (cold cache) and the dense weights from RAM; null if disk unknown
      (the streamed row's own disk ceiling counts only the bytes that really came from disk: resolveDiskCeiling) */
  disk: number | null;
  /** tok/s the quantized kernels allow: bytes / (threads x single-core kernel throughput); null if unknown */
  kernel: number | null;
  /** prefill tok/s the integer units allow: threads x single-core vpdpbusd peak / multiply-adds per token (prefill rows) */
  compute?: number | null;
}

/** Ceilings in tok/s for a model's token bytes on a machine's bandwidths. */
export function resolveCeilings(b: TokenBytes, bw: Bandwidths): Ceilings {
  const GB = 1e9;
  const memory = (bw.memoryGBs * GB) / b.totalBytes;
  const disk = bw.diskGBs ? 1 / (b.denseBytes / (bw.memoryGBs * GB) + b.expertBytesRead / (bw.diskGBs * GB)) : null;
  const kernel = bw.kernelGBsPerCore && bw.threads ? (bw.threads * bw.kernelGBsPerCore * GB) / b.totalBytes : null;
  return { memory, disk, kernel };
}

/**
 * The disk ceiling for the bytes that really came from the disk: of `bytesPerToken` a token reads, `fromDiskPerToken`
 * came from the disk (the engine counts its expert reads and asks mincore what was cached before each), the rest
 * from memory. tok/s = 1 / (memory bytes / memory bandwidth + disk bytes / disk bandwidth); null if disk unknown.
 */
export function resolveDiskCeiling(bytesPerToken: number, fromDiskPerToken: number, memoryGBs: number, diskGBs: number | null): number | null {
  if (!diskGBs) return null;
  const disk = Math.min(Math.max(0, fromDiskPerToken), bytesPerToken);
  return 1 / ((bytesPerToken - disk) / (memoryGBs * 1e9) + disk / (diskGBs * 1e9));
}

/** Measured tok/s as a percentage of each ceiling (null where the ceiling is unknown). */
export function ceilingPercents(tokPerS: number, c: Ceilings): { memory: number; disk: number | null; kernel: number | null } {
  const pct = (x: number | null) => (x ? (100 * tokPerS) / x : null);
  return { memory: pct(c.memory)!, disk: pct(c.disk), kernel: pct(c.kernel) };
}

/** "12% of mem 31.2 · 40% of disk 9.1 · 85% of kernel 4.3" (ceilings in tok/s). */
export function renderCeilings(tokPerS: number, c: Ceilings, opts: { cold?: boolean } = {}): string {
  const p = ceilingPercents(tokPerS, c);
  const part = (label: string, pct: number | null, ceil: number | null) => (ceil === null || pct === null ? null : `${Math.round(pct)}% of ${label} ${formatNumber(ceil)}`);
  return [
    opts.cold ? part("disk", p.disk, c.disk) : part("mem", p.memory, c.memory),
    opts.cold ? null : part("kernel", p.kernel, c.kernel),
  ]
    .filter(Boolean)
    .join(" · ");
}

/** "1.23 GB" style rendering of a byte count. */
export function renderBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let x = n;
  while (x >= 1000 && i < units.length - 1) {
    x /= 1000;
    i++;
  }
  return `${formatNumber(x)} ${units[i]}`;
}
