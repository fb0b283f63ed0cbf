// The machine a benchmark ran on: CPU, cores, RAM, OS, git commit, and its measured memory and disk bandwidth
// (measured once and cached in <data dir>/bench/machine.json; `--remeasure` measures again).
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { arch, availableParallelism, cpus, loadavg, release, totalmem, type } from "node:os";
import { join } from "pathe";
import { $ } from "zx";
import type { ResolvedConfig } from "../config/schema.ts";
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
  /** copy bandwidth, bytes read + written per second (STREAM convention), one thread, GB/s */
  oneThreadGBs: Summary;
  /** the same with `threads` threads copying at once (the ceiling a multi-threaded decode can reach) */
  allThreadsGBs: Summary;
  threads: number;
  bufferMiB: number;
}

export interface DiskBandwidth {
  /** folder the probe file was written in (the disk measured) */
  dir: string;
  fileMiB: number;
  /** sequential read from a cold page cache, GB/s; null when the cache could not be dropped */
  coldGBs: Summary | null;
  /** the same file read again from the page cache, GB/s */
  warmGBs: Summary;
  /** why coldGBs is null (or how the cache was dropped) */
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
  /** size of each of the two buffers per thread; much larger than the last-level cache */
  bufferMiB?: number;
  threads?: number;
  warmup?: number;
  runs?: number;
  /** copies per timed run */
  copiesPerRun?: number;
}

/**
 * Memory bandwidth by copying a buffer much larger than the caches, first on one thread, then on `threads`
 * threads at once. Buffers are allocated and touched once, before any timing (first-touch faults are costly).
 */
export async function measureMemoryBandwidth(opts: MemoryProbeOptions = {}): Promise<MemoryBandwidth> {
  const bufferMiB = opts.bufferMiB ?? 128;
  const threads = opts.threads ?? availableParallelism();
  const warmup = opts.warmup ?? 2;
  const runs = opts.runs ?? 9;
  const copies = opts.copiesPerRun ?? 3;
  const bytes = bufferMiB * 2 ** 20;
  const workers = Array.from({ length: threads }, () => new Worker(new URL("./_copy-worker.ts", import.meta.url).href));
  const ask = (w: Worker, msg: unknown) =>
    new Promise<{ ms?: number }>((res, rej) => {
      w.onmessage = (e) => res(e.data);
      w.onerror = (e) => rej(new Error(`memory probe worker failed: ${e.message}`));
      w.postMessage(msg);
    });
  try {
    await Promise.all(workers.map((w) => ask(w, { init: { src: new SharedArrayBuffer(bytes), dst: new SharedArrayBuffer(bytes) } })));
    const probe = async (active: Worker[]) => {
      const rates: number[] = [];
      for (let i = 0; i < warmup + runs; i++) {
        const t0 = performance.now();
        await Promise.all(active.map((w) => ask(w, { copies })));
        const s = (performance.now() - t0) / 1000;
        if (i >= warmup) rates.push((2 * bytes * copies * active.length) / s / 1e9);
      }
      return summarize(rates);
    };
    const oneThreadGBs = await probe(workers.slice(0, 1));
    const allThreadsGBs = threads > 1 ? await probe(workers) : oneThreadGBs;
    return { oneThreadGBs, allThreadsGBs, threads, bufferMiB };
  } finally {
    for (const w of workers) w.terminate();
  }
}

/**
 * Drop the OS page cache so the next read comes from the disk. Linux: write 3 to /proc/sys/vm/drop_caches
 * (root only); macOS: `purge` (root only). Returns how, or why it could not.
 */
export async function dropPageCache(): Promise<{ ok: boolean; note: string }> {
  if (process.platform === "linux") {
    try {
      await $({ quiet: true })`sync`;
      writeFileSync("/proc/sys/vm/drop_caches", "3\n");
      return { ok: true, note: "page cache dropped (echo 3 > /proc/sys/vm/drop_caches)" };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      // (macOS: purge, below)
      return { ok: false, note: `could not drop the page cache (/proc/sys/vm/drop_caches: ${code}; needs root)` };
    }
  }
  if (process.platform === "darwin") {
    const r = await $({ quiet: true, nothrow: true })`purge`;
    return r.exitCode === 0 ? { ok: true, note: "page cache dropped (purge)" } : { ok: false, note: "could not drop the page cache (`purge` needs root)" };
  }
  return { ok: false, note: `dropping the page cache is not supported on ${process.platform}` };
}

export interface DiskProbeOptions {
  fileMiB?: number;
  runs?: number;
  /** try to drop the page cache for cold reads (default true) */
  cold?: boolean;
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
        const d = await dropPageCache();
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
  version: 2;
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
      if (c.version === 2 && renderMachine(c.info) === renderMachine(info) && !(busyThen && checkMachineLoad() === null)) cache = c;
    } catch {
      // unreadable cache: measure again and overwrite it
    }
  }
  if (cache?.disks[diskDir]) return { version: 1, info, measuredAt: cache.measuredAt, memory: cache.memory, disk: cache.disks[diskDir]! };
  if (!cache) {
    logger.info("measuring memory bandwidth (once per machine; --remeasure to redo)");
    const load = loadavg()[0] ?? 0;
    cache = { version: 2, info, measuredAt: new Date().toISOString(), memory: await measureMemoryBandwidth(opts.memory), disks: {}, load };
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
    `memory copy: ${gb(p.memory.oneThreadGBs)} on 1 thread, ${gb(p.memory.allThreadsGBs)} on ${p.memory.threads} (read+write, ${p.memory.bufferMiB} MiB buffers)`,
    `disk read (${p.disk.dir}): cold ${gb(p.disk.coldGBs)}, page cache ${gb(p.disk.warmGBs)}${p.disk.coldGBs ? "" : ` — ${p.disk.note}`}`,
  ].join("\n");
}
