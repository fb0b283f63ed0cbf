// safetensors: validated headers of single and sharded checkpoints, tensor byte ranges, and a streaming writer.
// Format: u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?},
// then the data; offsets are relative to the end of the header.
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, writeSync } from "node:fs";
import { basename, join } from "pathe";
import { UserError } from "../errors.ts";

export const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1,
  U16: 2, I16: 2, F16: 2, BF16: 2,
  U32: 4, I32: 4, F32: 4,
  U64: 8, I64: 8, F64: 8,
};

/** Largest header we accept (real checkpoints have < 1 MiB; the format allows 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute path of the file holding the data. */
  file: string;
  /** Absolute byte offset of the data in `file`. */
  offset: number;
  size: number;
}

export interface SafetensorsFile {
  path: string;
  fileSize: number;
  /** Offset of the first data byte (8 + header length). */
  dataStart: number;
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
}

export interface TensorIndex {
  dir: string;
  /** Shard files in the order the index (or the folder listing) gives them. */
  files: string[];
  tensors: Map<string, TensorInfo>;
}

export const elementCount = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function fail(path: string, what: string): never {
  throw new UserError(`${basename(path)}: ${what}`, `file: ${path} — the checkpoint is damaged or incomplete; download it again`);
}

/** Read and validate the header of one .safetensors file: every tensor's range lies inside the file, sizes match dtype × shape, no overlaps. */
export function loadSafetensorsHeader(path: string): SafetensorsFile {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new UserError(`cannot open ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  try {
    const fileSize = fstatSync(fd).size;
    if (fileSize < 8) fail(path, `truncated: ${fileSize} bytes, shorter than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = lenBuf.readBigUInt64LE(0);
    if (headerLen > BigInt(Math.min(MAX_HEADER_BYTES, fileSize - 8)))
      fail(path, `header length ${headerLen} is impossible for a file of ${fileSize} bytes`);
    const n = Number(headerLen);
    const buf = Buffer.alloc(n);
    let got = 0;
    while (got < n) {
      const r = readSync(fd, buf, got, n - got, 8 + got);
      if (r === 0) break;
      got += r;
    }
    if (got !== n) fail(path, `truncated header (${got} of ${n} bytes)`);
    let json: unknown;
    try {
      json = JSON.parse(buf.toString("utf8"));
    } catch (e) {
      fail(path, `header is not valid JSON (${(e as Error).message})`);
    }
    if (!json || typeof json !== "object" || Array.isArray(json)) fail(path, "header is not a JSON object");
    return parseHeader(path, json as Record<string, unknown>, fileSize, 8 + n);
  } finally {
    closeSync(fd);
  }
}

function parseHeader(path: string, json: Record<string, unknown>, fileSize: number, dataStart: number): SafetensorsFile {
  const dataSize = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  const ranges: { begin: number; end: number; name: string }[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(json)) {
    if (name === "__metadata__") {
      metadata = (v ?? {}) as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== "object") fail(path, `tensor ${name}: entry is not an object`);
    const dtype = e.dtype;
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES))
      fail(path, `tensor ${name}: unsupported dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(", ")})`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(path, `tensor ${name}: bad shape ${JSON.stringify(shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(path, `tensor ${name}: bad data_offsets ${JSON.stringify(off)}`);
    const [begin, end] = off as [number, number];
    if (end < begin) fail(path, `tensor ${name}: data_offsets [${begin}, ${end}] end before begin`);
    if (end > dataSize)
      fail(path, `tensor ${name}: data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes; file truncated?)`);
    const expect = elementCount(shape as number[]) * DTYPE_BYTES[dtype]!;
    if (end - begin !== expect)
      fail(path, `tensor ${name}: ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${expect}`);
    tensors.set(name, { name, dtype, shape: shape as number[], file: path, offset: dataStart + begin, size: end - begin });
    ranges.push({ begin, end, name });
  }
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < ranges.length; i++) {
    const p = ranges[i - 1]!;
    const c = ranges[i]!;
    if (c.begin < p.end && c.end > c.begin && p.end > p.begin) fail(path, `tensor ${c.name}: data overlaps tensor ${p.name}`);
  }
  return { path, fileSize, dataStart, metadata, tensors };
}

/** Every tensor of a checkpoint folder: through model.safetensors.index.json when present, else all *.safetensors files. */
export function loadTensorIndex(dir: string): TensorIndex {
  const indexPath = join(dir, "model.safetensors.index.json");
  const tensors = new Map<string, TensorInfo>();
  if (existsSync(indexPath)) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(readFileSync(indexPath, "utf8"));
    } catch (e) {
      throw new UserError(`${indexPath}: not valid JSON (${(e as Error).message})`);
    }
    const map = index.weight_map;
    if (!map || typeof map !== "object") throw new UserError(`${indexPath}: no weight_map`);
    const files: string[] = [];
    for (const f of Object.values(map)) if (!files.includes(f)) files.push(f);
    const headers = new Map<string, SafetensorsFile>();
    for (const f of files) {
      const p = join(dir, f);
      if (!existsSync(p)) {
        const example = Object.keys(map).find((k) => map[k] === f);
        throw new UserError(`shard ${f} is missing (the index names it for tensor ${example} and others)`, `folder: ${dir} — the download is incomplete`);
      }
      headers.set(f, loadSafetensorsHeader(p));
    }
    for (const [name, f] of Object.entries(map)) {
      const t = headers.get(f)!.tensors.get(name);
      if (!t) throw new UserError(`tensor ${name}: the index says it is in ${f}, but that shard does not hold it`, `folder: ${dir}`);
      tensors.set(name, t);
    }
    return { dir, files: files.map((f) => join(dir, f)), tensors };
  }
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".safetensors"))
    .sort()
    .map((f) => join(dir, f));
  if (files.length === 0) throw new UserError(`no .safetensors files in ${dir}`, "is this a checkpoint folder (config.json + *.safetensors)?");
  for (const p of files) {
    for (const [name, t] of loadSafetensorsHeader(p).tensors) {
      if (tensors.has(name)) throw new UserError(`tensor ${name} appears in both ${basename(tensors.get(name)!.file)} and ${basename(p)}`);
      tensors.set(name, t);
    }
  }
  return { dir, files, tensors };
}

/** Read `size` bytes at `offset` of `file` into a new buffer (short reads are an error: the file shrank). */
export function readRange(file: string, offset: number, size: number, into?: Uint8Array): Uint8Array {
  const out = into ?? new Uint8Array(size);
  const fd = openSync(file, "r");
  try {
    let got = 0;
    while (got < size) {
      const r = readSync(fd, out, got, size - got, offset + got);
      if (r === 0) throw new UserError(`${basename(file)}: unexpected end of file at byte ${offset + got}`, `file: ${file}`);
      got += r;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

export const readTensorBytes = (t: TensorInfo) => readRange(t.file, t.offset, t.size);

// ---------------------------------------------------------------------------------------------
// Writer

export interface TensorSpec {
  name: string;
  dtype: string;
  shape: number[];
}

/** Header bytes (length prefix included) and each tensor's data offset for a file holding `specs` in order. */
export function renderSafetensorsHeader(specs: readonly TensorSpec[], metadata: Record<string, string> = { format: "pt" }) {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const offsets: number[] = [];
  let pos = 0;
  for (const s of specs) {
    const size = elementCount(s.shape) * DTYPE_BYTES[s.dtype]!;
    header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [pos, pos + size] };
    offsets.push(pos);
    pos += size;
  }
  let json = JSON.stringify(header);
  // pad with spaces so the data starts 8-byte aligned, as the reference writer does
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const body = Buffer.from(json, "utf8");
  const bytes = Buffer.alloc(8 + body.length);
  bytes.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(bytes, 8);
  return { bytes, offsets, dataSize: pos };
}

/**
 * Write a .safetensors file streaming each tensor's data: `fill(spec, chunk, byteOffset)` fills `chunk`
 * with the tensor's bytes starting at `byteOffset` (chunks are at most `chunkBytes`, multiples of 8 except the last).
 */
export function writeSafetensors(
  path: string,
  specs: readonly TensorSpec[],
  fill: (spec: TensorSpec, chunk: Uint8Array, byteOffset: number) => void,
  opts: { metadata?: Record<string, string>; chunkBytes?: number } = {},
): number {
  const { bytes } = renderSafetensorsHeader(specs, opts.metadata);
  const chunkBytes = opts.chunkBytes ?? 8 << 20;
  const buf = new Uint8Array(chunkBytes);
  const fd = openSync(path, "w");
  let total = 0;
  try {
    total += writeAll(fd, bytes);
    for (const s of specs) {
      const size = elementCount(s.shape) * DTYPE_BYTES[s.dtype]!;
      for (let off = 0; off < size; off += chunkBytes) {
        const chunk = buf.subarray(0, Math.min(chunkBytes, size - off));
        fill(s, chunk, off);
        total += writeAll(fd, chunk);
      }
    }
  } finally {
    closeSync(fd);
  }
  return total;
}

function writeAll(fd: number, data: Uint8Array): number {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
  return data.length;
}
