// The machine a benchmark ran on: CPU, cores, RAM, OS, git commit, and its measured memory and disk bandwidth
// (measured once and cached in <data dir>/bench/machine.json; `--remeasure` measures again).
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeSync } from "node:fs";
import { arch, availableParallelism, cpus, loadavg, release, totalmem, type } from "node:os";
import { join } from "pathe";
import { $ } from "zx";
import type { ResolvedConfig } from "../config/schema.ts";
import { engineBinaryPath } from "../engine/client.ts";
import { UserError } from "../errors.ts";
import { checkFreeDisk, writeFileAtomic } from "../fs.ts";
import { logger } from "../log.ts";
import { type Summary, formatNumber, summarize } from "./stats.ts";

export interface MachineInfo {
  /** CPU model name as the OS reports it */
  cpu: string;
  /** logical CPUs this process may use */
  cores: number;
  ramGiB: number;
  /** e.g. "Linux 6.8.0 x64", "Darwin 24.1.0 arm64" */
  os: string;
}

export interface MemoryBandwidth {
  /** read-only streaming bandwidth (bytes read per second), one thread, GB/s */
  oneThreadGBs: Summary;
  /** the same with `threads` threads reading at once */
  allThreadsGBs: Summary;
  /** every thread count measured, 1..threads (decode's ceiling is the entry for the threads the engine computes with) */
  byThreads: { threads: number; gbs: Summary }[];
  threads: number;
  /** buffer each thread streams (far beyond the last-level cache) */
  bufferMiB: number;
  /** the core clock measured by the engine (a chain of dependent adds); null where not measured */
  clockGHz: number | null;
  /** how it was measured */
  method: string;
}

/** Read bandwidth with `threads` threads (the closest thread count measured), GB/s median. */
export function readBandwidthFor(m: MemoryBandwidth, threads: number): number {
  const row = m.byThreads.find((r) => r.threads === threads) ?? m.byThreads.at(-1);
  return row ? row.gbs.median : m.allThreadsGBs.median;
}

export interface DiskBandwidth {
  /** folder the probe file was written in (the disk measured) */
  dir: string;
  fileMiB: number;
  /** sequential read from a cold page cache (the file evicted), GB/s; null when it could not be evicted */
  coldGBs: Summary | null;
  /** the same file read again from the page cache, GB/s */
  warmGBs: Summary;
  /** why coldGBs is null (or how the file was evicted) */
  note: string;
}

export interface MachineProfile {
  version: 1;
  info: MachineInfo;
  measuredAt: string;
  memory: MemoryBandwidth;
  disk: DiskBandwidth;
}

/** CPU model, cores, RAM and OS of this machine (cheap; no measurement). */
export function loadMachineInfo(): MachineInfo {
  let cpu = cpus()[0]?.model?.trim() || "";
  if (!cpu && process.platform === "linux" && existsSync("/proc/cpuinfo")) {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? "";
  }
  if (!cpu && process.platform === "darwin") {
    cpu = Bun.spawnSync(["sysctl", "-n", "machdep.cpu.brand_string"], { stdout: "pipe", stderr: "ignore" }).stdout.toString().trim();
  }
  return {
    cpu: cpu.replace(/\s+/g, " ") || "unknown CPU",
    cores: availableParallelism(),
    ramGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${type()} ${release().split("-")[0]} ${arch()}`,
  };
}

/**
 * A warning when other work competes for the CPUs (1-minute load average at or above half the cores): figures
 * measured then are low and noisy. `load` is for tests; default the OS's. Null when the machine looks quiet.
 */
export function checkMachineLoad(load = loadavg()[0] ?? 0, cores = availableParallelism()): string | null {
  if (load < cores / 2) return null;
  return `the machine is busy (load average ${load.toFixed(1)} on ${cores} cores): other processes compete with the benchmark, so its figures will be low and noisy`;
}

/** "AMD EPYC, 2 cores, 23.5 GiB, Linux 6.18.44 x64" — the machine column of the history. */
export const renderMachine = (m: MachineInfo) => `${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB, ${m.os}`;

const repoRoot = join(import.meta.dir, "..", "..");

/** Short commit of this checkout, with "-dirty" when tracked files differ from it; "unknown" outside git. */
export async function loadGitCommit(cwd = repoRoot): Promise<string> {
  const sh = $({ cwd, quiet: true, nothrow: true });
  const head = await sh`git rev-parse --short=10 HEAD`;
  if (head.exitCode !== 0) return "unknown";
  const status = await sh`git status --porcelain --untracked-files=no`;
  return head.stdout.trim() + (status.exitCode === 0 && status.stdout.trim() ? "-dirty" : "");
}

export interface MemoryProbeOptions {
  /** most threads measured (default all cores): 1, 2, .. threads */
  threads?: number;
  /** timed runs per thread count (after one warm-up) */
  runs?: number;
  binary?: string;
}

/**
 * Memory read bandwidth, as decode uses memory: `flashchat-engine bench membw` streams a 64 MiB buffer per thread
 * (a read-only sum, far beyond the caches) on 1..threads threads at once, and measures the clock.
 */
export async function measureMemoryBandwidth(opts: MemoryProbeOptions = {}): Promise<MemoryBandwidth> {
  const threads = opts.threads ?? availableParallelism();
  const runs = opts.runs ?? 7;
  const binary = opts.binary ?? engineBinaryPath();
  if (!existsSync(binary)) throw new UserError(`the engine is not built (${binary} is missing)`, "run: make engine");
  const r = Bun.spawnSync([binary, "bench", "membw", "--threads", String(threads), "--iters", String(runs), "--json"], { stdout: "pipe", stderr: "pipe" });
  const line = r.stdout.toString().trim().split("\n").at(-1) ?? "";
  if (r.exitCode !== 0 || !line.startsWith("{")) throw new Error(`flashchat-engine bench membw failed (exit ${r.exitCode}): ${r.stderr.toString().trim().slice(0, 300)}`);
  const j = JSON.parse(line) as { buffer_mib_per_thread: number; results: { threads: number; read_gbps: number; min: number; max: number }[]; clock_ghz: number };
  // the engine reports median and range of its runs; kept as a summary of those runs
  const byThreads = j.results.map((x) => ({ threads: x.threads, gbs: { median: x.read_gbps, min: x.min, max: x.max, n: runs } }));
  return {
    oneThreadGBs: byThreads[0]!.gbs,
    allThreadsGBs: byThreads.at(-1)!.gbs,
    byThreads,
    threads,
    bufferMiB: j.buffer_mib_per_thread,
    clockGHz: j.clock_ghz > 0 ? j.clock_ghz : null,
    method: "read-only streaming sum, one buffer per thread (flashchat-engine bench membw)",
  };
}

export interface EvictResult {
  ok: boolean;
  /** how, or why not */
  note: string;
  bytes?: number;
  residentBefore?: number;
  residentAfter?: number;
}

/** Every regular file under `dir` (recursively). */
export function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/**
 * Drop these files (and only these) from the page cache, so their next reads come from the disk: Linux
 * `flashchat-engine evict` (posix_fadvise DONTNEED per file, checked with mincore); macOS has no per-file
 * eviction, so there `purge` (root only) drops the whole cache.
 */
export async function evictFiles(paths: readonly string[], binary = engineBinaryPath()): Promise<EvictResult> {
  if (process.platform === "darwin") {
    const r = await $({ quiet: true, nothrow: true })`purge`;
    return r.exitCode === 0 ? { ok: true, note: "page cache dropped (purge: macOS has no per-file eviction)" } : { ok: false, note: "could not drop the page cache (`purge` needs root)" };
  }
  if (!existsSync(binary)) return { ok: false, note: `cannot evict files: the engine is not built (${binary})` };
  const r = Bun.spawnSync([binary, "evict", ...paths], { stdout: "pipe", stderr: "pipe" });
  const line = r.stdout.toString().trim().split("\n").at(-1) ?? "";
  if (r.exitCode !== 0 || !line.startsWith("{")) return { ok: false, note: `could not evict the files (${r.stderr.toString().trim().slice(0, 200) || `exit ${r.exitCode}`})` };
  const j = JSON.parse(line) as { files: number; bytes: number; resident_before: number; resident_after: number };
  return {
    ok: true,
    note: `${j.files} file(s) evicted from the page cache (posix_fadvise DONTNEED; on macOS: purge, above), ${formatNumber(j.resident_after / 1e6)} of ${formatNumber(j.bytes / 1e6)} MB still resident`,
    bytes: j.bytes,
    residentBefore: j.resident_before,
    residentAfter: j.resident_after,
  };
}

export interface DiskProbeOptions {
  fileMiB?: number;
  runs?: number;
  /** read cold too, the probe file evicted from the page cache first (default true) */
  cold?: boolean;
  binary?: string;
}

/** Sequential read bandwidth of the disk holding `dir`: a probe file written there, read cold (if the OS lets us) and warm. */
export async function measureDiskBandwidth(dir: string, opts: DiskProbeOptions = {}): Promise<DiskBandwidth> {
  const fileMiB = opts.fileMiB ?? 256;
  const runs = opts.runs ?? 3;
  const chunk = 4 * 2 ** 20;
  mkdirSync(dir, { recursive: true });
  checkFreeDisk(dir, fileMiB * 2 ** 20, `a ${fileMiB} MiB disk probe`);
  const file = join(dir, `.disk-probe-${process.pid}.bin`);
  const buf = Buffer.allocUnsafe(chunk);
  // incompressible content, so a compressing filesystem cannot shortcut the reads
  let x = 0x9e3779b9;
  for (let i = 0; i < chunk; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, i);
  }
  try {
    const fd = openSync(file, "w", 0o600);
    try {
      for (let off = 0; off < fileMiB * 2 ** 20; off += chunk) {
        buf.writeUInt32LE(off / chunk, 0);
        writeSync(fd, buf, 0, chunk);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const readAll = () => {
      const fd = openSync(file, "r");
      const t0 = performance.now();
      let total = 0;
      try {
        for (;;) {
          const n = readSync(fd, buf, 0, chunk, null);
          if (n <= 0) break;
          total += n;
        }
      } finally {
        closeSync(fd);
      }
      return total / ((performance.now() - t0) / 1000) / 1e9;
    };
    let coldGBs: Summary | null = null;
    let note: string;
    if (opts.cold === false) note = "cold reads not measured (disabled)";
    else {
      const cold: number[] = [];
      note = "";
      for (let i = 0; i < runs; i++) {
        const d = await evictFiles([file], opts.binary);
        note = d.note;
        if (!d.ok) break;
        cold.push(readAll());
      }
      if (cold.length === runs) coldGBs = summarize(cold);
    }
    readAll(); // warm-up: bring the whole file into the page cache
    const warm: number[] = [];
    for (let i = 0; i < Math.max(runs, 3); i++) warm.push(readAll());
    return { dir, fileMiB, coldGBs, warmGBs: summarize(warm), note };
  } finally {
    rmSync(file, { force: true });
  }
}

export const machineProfilePath = (config: Pick<ResolvedConfig, "paths">) => join(config.paths.dataDir, "bench", "machine.json");

export interface LoadProfileOptions {
  /** measure again even when cached figures match this machine */
  remeasure?: boolean;
  /** folder on the disk to measure (default: the artifacts folder if it exists, else <data dir>/bench) */
  diskDir?: string;
  memory?: MemoryProbeOptions;
  disk?: DiskProbeOptions;
}

/** What machine.json holds: memory figures of this machine and disk figures per folder measured. */
interface ProfileCache {
  version: 3;
  info: MachineInfo;
  measuredAt: string;
  memory: MemoryBandwidth;
  disks: Record<string, DiskBandwidth>;
  /** 1-minute load average when the memory was measured */
  load: number;
}

/**
 * Memory and disk bandwidth of this machine: cached figures when they were measured on the same machine (CPU, cores,
 * RAM, OS) — the disk per folder — else measured now and cached.
 */
export async function loadMachineProfile(config: Pick<ResolvedConfig, "paths" | "artifactsDir">, opts: LoadProfileOptions = {}): Promise<MachineProfile> {
  const path = machineProfilePath(config);
  const info = loadMachineInfo();
  const diskDir = opts.diskDir ?? (existsSync(config.artifactsDir) ? config.artifactsDir : join(config.paths.dataDir, "bench"));
  let cache: ProfileCache | undefined;
  if (!opts.remeasure && existsSync(path)) {
    try {
      const c = JSON.parse(readFileSync(path, "utf8")) as ProfileCache;
      // figures taken on a busy machine are replaced as soon as the machine is quiet
      const busyThen = checkMachineLoad(c.load ?? 0, info.cores) !== null;
      if (c.version === 3 && renderMachine(c.info) === renderMachine(info) && !(busyThen && checkMachineLoad() === null)) cache = c;
    } catch {
      // unreadable cache: measure again and overwrite it
    }
  }
  if (cache?.disks[diskDir]) return { version: 1, info, measuredAt: cache.measuredAt, memory: cache.memory, disk: cache.disks[diskDir]! };
  if (!cache) {
    logger.info("measuring memory read bandwidth and the clock (cached per machine; --remeasure measures again)");
    const load = loadavg()[0] ?? 0;
    cache = { version: 3, info, measuredAt: new Date().toISOString(), memory: await measureMemoryBandwidth(opts.memory), disks: {}, load };
  }
  logger.info(`measuring the read bandwidth of the disk holding ${diskDir} (once per folder)`);
  cache.disks[diskDir] = await measureDiskBandwidth(diskDir, opts.disk);
  writeFileAtomic(path, `${JSON.stringify(cache, null, 2)}\n`);
  const profile: MachineProfile = { version: 1, info, measuredAt: cache.measuredAt, memory: cache.memory, disk: cache.disks[diskDir]! };
  logger.info(renderProfile(profile));
  return profile;
}

/** One paragraph describing the machine and its measured bandwidths. */
export function renderProfile(p: MachineProfile): string {
  const gb = (s: Summary | null) => (s ? `${formatNumber(s.median)} GB/s (${formatNumber(s.min)}–${formatNumber(s.max)})` : "n/a");
  return [
    `machine: ${renderMachine(p.info)} (bandwidths measured ${p.measuredAt.replace("T", " ").slice(0, 16)} UTC)`,
    `memory read: ${p.memory.byThreads.map((r) => `${gb(r.gbs)} on ${r.threads} thread${r.threads === 1 ? "" : "s"}`).join(", ")} (${p.memory.bufferMiB} MiB per thread)` +
      (p.memory.clockGHz ? `; clock ${formatNumber(p.memory.clockGHz)} GHz measured` : ""),
    `disk read (${p.disk.dir}): cold ${gb(p.disk.coldGBs)}, page cache ${gb(p.disk.warmGBs)}${p.disk.coldGBs ? "" : ` — ${p.disk.note}`}`,
  ].join("\n");
}
