// repack-experts: each MoE layer's experts into packed_experts/layer_NN.bin (expert E at E * expert_size) + layout.json;
// crash-safe (temp name + rename per layer), resumable (finished layers are checked, then skipped), optional full verify.
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "pathe";
import { UserError } from "../errors.ts";
import { writeFileAtomic } from "../fs.ts";
import { logger } from "../log.ts";
import { artifactPaths, LAYOUT_JSON, layerFileName } from "./artifacts.ts";
import { type AssembleOptions, assembleInto, openOutput, type Piece } from "./assemble.ts";
import { type Checkpoint, describeExperts, loadCheckpoint } from "./checkpoint.ts";
import { buildExpert, type ExpertsLayout, type LayerPlan, type LayoutLayer, layerSourceHash, planLayer } from "./expert-layout.ts";
import { checkFreeDisk, commitFile } from "../fs.ts";
import { createFdCache, type FdCache, openForWrite, preadFull, pwriteFull, tmpName } from "./io.ts";
import { createProgress, type ProgressFn } from "../progress.ts";
import { createModelWorkerPool, defaultWorkerCount, type ModelWorkerPool } from "./workers.ts";

export interface RepackOptions {
  /** Absolute path of the checkpoint folder. */
  checkpointDir: string;
  /** Artifacts folder; packed_experts/ (or packed_experts_2bit/ for bits 2) is written inside it. */
  outDir: string;
  /** Target bits: default the source's (MLX) or 4 (HF). 2 writes packed_experts_2bit/. */
  bits?: number;
  /** Layers to (re)pack: "0-4,7" or a list; default all MoE layers. */
  layers?: string | number[];
  /** Compare every byte of the output against the sources; first mismatch is an error. */
  verify?: boolean;
  /** source.repo in layout.json (default: checkpointDir) */
  repo?: string;
  /** I/O tuning (benchmarks): O_DIRECT writes (default true where supported), window size, windows in flight */
  direct?: boolean;
  windowBytes?: number;
  windows?: number;
  /** worker threads for quantization and --verify (default: all cores when the work is large, else none) */
  workers?: number;
  onProgress?: ProgressFn;
}

export interface RepackResult {
  dir: string;
  bits: number;
  layersWritten: number[];
  layersSkipped: number[];
  bytesWritten: number;
  seconds: number;
  verified: boolean;
}

/** "0-4,7" -> [0, 1, 2, 3, 4, 7] */
export function parseLayerList(spec: string): number[] {
  const out = new Set<number>();
  for (const part of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new UserError(`--layers: cannot read ${JSON.stringify(part)}`, "use e.g. --layers 0-4,7");
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new UserError(`--layers: range ${part} runs backwards`);
    for (let i = a; i <= b; i++) out.add(i);
  }
  if (out.size === 0) throw new UserError("--layers: empty list", "use e.g. --layers 0-4,7");
  return [...out].sort((x, y) => x - y);
}

/** Directory for a bit width: packed_experts_2bit/ for 2 bits, else packed_experts/. */
export const expertsDirFor = (outDir: string, bits: number) => (bits === 2 ? artifactPaths(outDir).experts2bitDir : artifactPaths(outDir).expertsDir);

function readLayout(dir: string): ExpertsLayout | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, LAYOUT_JSON), "utf8"));
  } catch {
    return undefined;
  }
}

/** First byte where `actual` differs from `expected`, or -1. */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  // compare 8 bytes at a time where aligned
  if (a.byteOffset % 8 === 0 && b.byteOffset % 8 === 0) {
    const a64 = new BigUint64Array(a.buffer, a.byteOffset, n >> 3);
    const b64 = new BigUint64Array(b.buffer, b.byteOffset, n >> 3);
    for (let i = 0; i < a64.length; i++) {
      if (a64[i] !== b64[i]) {
        for (let j = i * 8; j < i * 8 + 8; j++) if (a[j] !== b[j]) return j;
      }
    }
    for (let j = a64.length * 8; j < n; j++) if (a[j] !== b[j]) return j;
  } else for (let j = 0; j < n; j++) if (a[j] !== b[j]) return j;
  return a.length === b.length ? -1 : n;
}

/** Compare experts `experts` of an existing layer file with what the sources give; returns a description of the first mismatch or null. */
function checkExperts(plan: LayerPlan, path: string, experts: Iterable<number>, fds: FdCache): string | null {
  const fd = openSync(path, "r");
  try {
    const want = new Uint8Array(plan.expertSize);
    const got = new Uint8Array(plan.expertSize);
    for (const e of experts) {
      buildExpert(plan, e, want, fds);
      preadFull(fd, got, e * plan.expertSize, path);
      const d = firstDiff(got, want);
      if (d >= 0) {
        const comp = plan.components.find((c) => d >= c.offset && d < c.offset + c.size);
        return `expert ${e}, ${comp ? `${comp.name} byte ${d - comp.offset}` : `padding byte ${d}`} (file offset ${e * plan.expertSize + d}): ${got[d]} instead of ${want[d]}`;
      }
    }
    return null;
  } finally {
    closeSync(fd);
  }
}

/** [from, to) ranges covering `n` experts, a few per worker so uneven speeds even out. */
function expertRanges(n: number, workers: number): [number, number][] {
  const step = Math.max(1, Math.ceil(n / (workers * 4)));
  const out: [number, number][] = [];
  for (let a = 0; a < n; a += step) out.push([a, Math.min(n, a + step)]);
  return out;
}

/** Write one layer file through its temp name: byte-copy plans are assembled in aligned windows (O_DIRECT, reads and writes in flight); computed plans expert by expert. */
async function writeLayer(plan: LayerPlan, path: string, fds: FdCache, onBytes: (n: number) => void, io: AssembleOptions, pool?: ModelWorkerPool): Promise<void> {
  const tmp = tmpName(path);
  mkdirSync(dirname(tmp), { recursive: true });
  const E = plan.numExperts;
  const total = E * plan.expertSize;
  const { fd, direct } = plan.copy ? openOutput(tmp, io.direct ?? true) : { fd: openForWrite(tmp), direct: false };
  try {
    if (plan.copy) {
      const pieces: Piece[] = [];
      plan.copy.forEach((c, ci) => {
        const comp = plan.components[ci]!;
        for (let e = 0; e < E; e++) pieces.push({ file: c.file, srcOffset: c.tensorOffset + e * c.stride, size: c.stride, dstOffset: e * plan.expertSize + comp.offset, stream: ci });
      });
      await assembleInto(fd, direct, total, pieces, { ...io, onBytes });
    } else if (pool) {
      // quantization is CPU-bound: expert ranges in parallel, each worker writing its experts into the temp file
      ftruncateSync(fd, total);
      await Promise.all(expertRanges(E, pool.size).map(([from, to]) => pool.run({ op: "build", plan, path: tmp, from, to }, onBytes)));
    } else {
      ftruncateSync(fd, total);
      const buf = new Uint8Array(plan.expertSize);
      for (let e = 0; e < E; e++) {
        buildExpert(plan, e, buf, fds);
        pwriteFull(fd, buf, e * plan.expertSize);
        onBytes(plan.expertSize);
      }
    }
    commitFile(fd, tmp, path);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {}
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** layout.json text: one component and one layer per line. */
export function renderLayout(l: ExpertsLayout): string {
  const { components, layers, moe_layers, source, ...head } = l;
  const lines = (xs: unknown[]) => xs.map((x) => `    ${JSON.stringify(x)}`).join(",\n");
  const top = Object.entries(head).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(",\n");
  return `{\n${top},\n  "source": ${JSON.stringify(source)},\n  "components": [\n${lines(components)}\n  ],\n  "layers": [\n${lines(layers)}\n  ],\n  "moe_layers": ${JSON.stringify(moe_layers)}\n}\n`;
}

export async function repackExperts(opts: RepackOptions): Promise<RepackResult> {
  return repackFromCheckpoint(loadCheckpoint(opts.checkpointDir), opts);
}

export async function repackFromCheckpoint(ckpt: Checkpoint, opts: RepackOptions): Promise<RepackResult> {
  const expertLayers = describeExperts(ckpt);
  if (expertLayers.length === 0) throw new UserError(`no expert tensors in ${ckpt.dir}`, "is this a Mixture-of-Experts checkpoint of the Qwen3.5/Qwen3-Next family?");
  const sourceBits = ckpt.format === "mlx" ? ckpt.quant!.bits : 4;
  const bits = opts.bits ?? sourceBits;
  if (![2, 4, 8].includes(bits)) throw new UserError(`--bits must be 2, 4 or 8, not ${opts.bits}`);
  if (ckpt.format === "mlx" && bits > sourceBits)
    throw new UserError(`--bits ${bits} is more than the checkpoint's ${sourceBits} bits`, "requantization only goes down (e.g. --bits 2)");
  const groupSize = ckpt.format === "mlx" ? ckpt.quant!.groupSize : 64;
  const moeLayers = expertLayers.map((l) => l.layer);
  let selected = moeLayers;
  if (opts.layers !== undefined) {
    const want = typeof opts.layers === "string" ? parseLayerList(opts.layers) : opts.layers;
    const bad = want.filter((l) => !moeLayers.includes(l));
    if (bad.length) throw new UserError(`--layers: ${bad.join(", ")} not MoE layers of this model (it has layers ${moeLayers[0]}-${moeLayers.at(-1)})`);
    selected = want;
  }
  const { num_experts: E, num_hidden_layers: nLayers } = ckpt.config;
  const plans = new Map(expertLayers.map((l) => [l.layer, planLayer(l, E, bits, groupSize)]));
  const first = plans.get(moeLayers[0]!)!;
  const dir = expertsDirFor(opts.outDir, bits);
  const old = readLayout(dir);
  const oldLayers = new Map((old?.layers ?? []).map((l) => [l.layer, l]));
  const fds = createFdCache();
  const layerSize = E * first.expertSize;
  let pool: ModelWorkerPool | undefined;

  try {
    // which layers are already done? (checked: size, recorded source hash, and a spot check of their bytes)
    const done = new Map<number, LayoutLayer>();
    const todo: number[] = [];
    for (const l of moeLayers) {
      const plan = plans.get(l)!;
      const file = layerFileName(l, nLayers);
      const path = join(dir, file);
      const hash = layerSourceHash(plan);
      if (existsSync(path) && statSync(path).size === layerSize) {
        const rec = oldLayers.get(l);
        const hashOk = !rec?.source_hash || rec.source_hash === hash;
        const spot = hashOk ? checkExperts(plan, path, new Set([0, E >> 1, E - 1]), fds) : "recorded source differs";
        if (spot === null) {
          done.set(l, { layer: l, file, size: layerSize, source_hash: hash });
          continue;
        }
        if (selected.includes(l)) logger.info(`${file}: will be rewritten (${spot})`);
      }
      if (selected.includes(l)) todo.push(l);
    }
    for (const f of existsSync(dir) ? readdirSync(dir) : []) if (f.endsWith(".tmp")) rmSync(join(dir, f), { force: true });

    // a layout of another shape (bits, sizes) must not stay beside files being replaced: it is rewritten at the end
    if (old && (old.bits !== bits || old.expert_size !== first.expertSize || JSON.stringify(old.components) !== JSON.stringify(first.components)))
      rmSync(join(dir, LAYOUT_JSON), { force: true });
    const totalBytes = todo.length * layerSize;
    // workers for quantization (and full verification) when there is enough of it to pay for their start-up
    const cpuWork = (todo.some((l) => !plans.get(l)!.copy) ? totalBytes : 0) + (opts.verify ? selected.length * layerSize : 0);
    const nWorkers = opts.workers ?? (cpuWork > 64e6 ? defaultWorkerCount() : 0);
    if (nWorkers > 0) pool = createModelWorkerPool(nWorkers);
    checkFreeDisk(dir, totalBytes, `${todo.length} packed expert layer(s)`);
    const skipped = selected.filter((l) => done.has(l));
    if (skipped.length) logger.info(`skipping ${skipped.length} finished layer(s): ${skipped.join(", ")}`);
    const progress = createProgress(`repack-experts (${bits}-bit)`, totalBytes, opts.onProgress);
    for (const l of todo) {
      const plan = plans.get(l)!;
      const file = layerFileName(l, nLayers);
      progress.setDetail(file);
      await writeLayer(plan, join(dir, file), fds, (n) => progress.add(n), { direct: opts.direct, windowBytes: opts.windowBytes, windows: opts.windows }, plan.copy ? undefined : pool);
      done.set(l, { layer: l, file, size: layerSize, source_hash: layerSourceHash(plan) });
    }

    if (opts.verify) {
      for (const l of selected) {
        const plan = plans.get(l)!;
        const file = layerFileName(l, nLayers);
        const path = join(dir, file);
        const bad = pool
          ? (await Promise.all(expertRanges(E, pool.size).map(([from, to]) => pool!.run<string | null>({ op: "check", plan, path, from, to })))).find((x) => x) ?? null
          : checkExperts(plan, path, Array.from({ length: E }, (_, i) => i), fds);
        if (bad) throw new UserError(`verify failed: ${file}: ${bad}`, `re-run: bun scripts/repack-experts.ts --model ${ckpt.dir} --out ${opts.outDir} --layers ${l}`);
      }
      logger.info(`verified ${selected.length} layer(s): every byte matches the checkpoint`);
    }

    const layout: ExpertsLayout = {
      format: "flashchat-experts",
      version: 1,
      bits,
      group_size: groupSize,
      num_experts: E,
      hidden_size: ckpt.config.hidden_size,
      moe_intermediate_size: ckpt.config.moe_intermediate_size,
      expert_size: first.expertSize,
      components: first.components,
      layers: [...done.values()].sort((a, b) => a.layer - b.layer),
      moe_layers: moeLayers,
      source: { format: ckpt.format, repo: opts.repo ?? ckpt.dir },
    };
    writeFileAtomic(join(dir, LAYOUT_JSON), renderLayout(layout));
    return { dir, bits, layersWritten: todo, layersSkipped: skipped, bytesWritten: totalBytes, seconds: progress.elapsedSec(), verified: Boolean(opts.verify) };
  } finally {
    fds.close();
    pool?.close();
  }
}
