// Results history: one TSV row per figure (date, commit, machine, model, quantization, target, figure, median/min/max,
// ceilings) appended to <data dir>/bench/history.tsv; appends are single fsynced writes, the header is created atomically.
import { closeSync, existsSync, linkSync, openSync, readFileSync, rmSync, writeSync, fsyncSync } from "node:fs";
import { dirname, join } from "pathe";
import { mkdirSync } from "node:fs";
import type { ResolvedConfig } from "../config/schema.ts";
import { appendLineDurable, fsyncDir, tempPath } from "../fs.ts";
import { logger } from "../log.ts";
import type { MachineInfo } from "./machine.ts";
import type { Ceilings } from "./roofline.ts";
import type { Summary } from "./stats.ts";

export const HISTORY_COLUMNS = [
  "date",
  "commit",
  "cpu",
  "cores",
  "ram_gib",
  "os",
  "model",
  "quantization",
  "target",
  "figure",
  "unit",
  "median",
  "min",
  "max",
  "runs",
  "ceil_mem",
  "ceil_disk",
  "ceil_kernel",
] as const;

export type HistoryColumn = (typeof HISTORY_COLUMNS)[number];

/** One measured figure of one benchmark run. */
export interface BenchRecord {
  /** ISO 8601 */
  date: string;
  commit: string;
  machine: MachineInfo;
  /** model name (bench model preset or repo) */
  model: string;
  /** "4bit", "2bit", ... */
  quantization: string;
  target: string;
  /** e.g. "decode_tok_s", "prefill_tok_s", "ttft_ms", "op_ms", "gb_s" */
  figure: string;
  unit: string;
  stats: Summary;
  /** ceilings in the figure's unit (tok/s for decode figures); null where unknown or not applicable */
  ceilings?: Partial<Ceilings>;
}

export const historyPath = (config: Pick<ResolvedConfig, "paths">) => join(config.paths.dataDir, "bench", "history.tsv");

const clean = (s: string) => s.replace(/[\t\r\n]+/g, " ").trim();
const num = (x: number | null | undefined) => (x === null || x === undefined || !Number.isFinite(x) ? "" : String(Number(x.toPrecision(6))));

/** The TSV fields of a record, by column. */
export function recordToRow(r: BenchRecord): Record<HistoryColumn, string> {
  return {
    date: clean(r.date),
    commit: clean(r.commit),
    cpu: clean(r.machine.cpu),
    cores: String(r.machine.cores),
    ram_gib: num(r.machine.ramGiB),
    os: clean(r.machine.os),
    model: clean(r.model),
    quantization: clean(r.quantization),
    target: clean(r.target),
    figure: clean(r.figure),
    unit: clean(r.unit),
    median: num(r.stats.median),
    min: num(r.stats.min),
    max: num(r.stats.max),
    runs: String(r.stats.n),
    ceil_mem: num(r.ceilings?.memory),
    ceil_disk: num(r.ceilings?.disk),
    ceil_kernel: num(r.ceilings?.kernel),
  };
}

/** A record from TSV fields; null when a required field is missing or not a number. */
export function rowToRecord(row: Partial<Record<string, string>>): BenchRecord | null {
  const n = (k: string) => {
    const v = row[k];
    if (v === undefined || v === "") return null;
    const x = Number(v);
    return Number.isFinite(x) ? x : null;
  };
  const median = n("median");
  const min = n("min");
  const max = n("max");
  if (!row.date || !row.target || !row.figure || median === null || min === null || max === null) return null;
  return {
    date: row.date,
    commit: row.commit || "unknown",
    machine: { cpu: row.cpu ?? "", cores: n("cores") ?? 0, ramGiB: n("ram_gib") ?? 0, os: row.os ?? "" },
    model: row.model ?? "",
    quantization: row.quantization ?? "",
    target: row.target,
    figure: row.figure,
    unit: row.unit ?? "",
    stats: { median, min, max, n: n("runs") ?? 0 },
    ceilings: { memory: n("ceil_mem") ?? undefined, disk: n("ceil_disk"), kernel: n("ceil_kernel") },
  };
}

/** Create the file with its header line unless it exists (atomic: a full header or no file, never two headers). */
function setupHistoryFile(path: string): string[] {
  if (existsSync(path)) return readHeader(path);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPath(path);
  const fd = openSync(tmp, "w", 0o644);
  try {
    writeSync(fd, `${HISTORY_COLUMNS.join("\t")}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path); // fails if another process created it first: then theirs is used
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
  fsyncDir(dirname(path));
  return readHeader(path);
}

function readHeader(path: string): string[] {
  const text = readFileSync(path, "utf8");
  const first = text.slice(0, text.indexOf("\n") >= 0 ? text.indexOf("\n") : text.length);
  const cols = first.split("\t");
  if (!cols.includes("median") || !cols.includes("figure")) throw new Error(`${path} is not a benchmark history (header: ${first.slice(0, 80)})`);
  return cols;
}

/**
 * Append records to the history, in one write of whole lines (O_APPEND + fsync), so concurrent runs
 * interleave whole rows and a crash loses at most the rows of that run. Columns follow the file's header.
 */
export function appendHistory(path: string, records: readonly BenchRecord[]): void {
  if (!records.length) return;
  const header = setupHistoryFile(path);
  const lines = records.map((r) => {
    const row = recordToRow(r) as Record<string, string>;
    return header.map((c) => row[c] ?? "").join("\t");
  });
  appendLineDurable(path, `${lines.join("\n")}\n`, 0o644);
}

/** Every record of the history, oldest first (missing file = none). Malformed lines are skipped with a warning. */
export function loadHistory(path: string): BenchRecord[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, "utf8").split("\n");
  const header = lines[0]!.split("\t");
  const out: BenchRecord[] = [];
  let bad = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.trim()) continue;
    const fields = line.split("\t");
    const rec = fields.length === header.length ? rowToRecord(Object.fromEntries(header.map((h, j) => [h, fields[j]]))) : null;
    if (rec) out.push(rec);
    else bad++;
  }
  if (bad) logger.warn(`${path}: skipped ${bad} malformed line${bad > 1 ? "s" : ""}`);
  return out;
}
