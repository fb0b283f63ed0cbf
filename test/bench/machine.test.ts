import { afterEach, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import { checkMachineLoad, evictFiles, loadGitCommit, loadMachineInfo, loadMachineProfile, machineProfilePath, measureDiskBandwidth, measureMemoryBandwidth, readBandwidthFor, renderMachine, renderProfile } from "../../lib/bench/machine.ts";
import { resolvePaths } from "../../lib/config/index.ts";
import { makeTempHome, type TempHome } from "../helpers/cli.ts";

let t: TempHome | undefined;
afterEach(() => t?.[Symbol.dispose]());

test("a busy machine is called out, a quiet one is not", () => {
  expect(checkMachineLoad(0.3, 2)).toBeNull();
  expect(checkMachineLoad(9.7, 2)).toBe("the machine is busy (load average 9.7 on 2 cores): other processes compete with the benchmark, so its figures will be low and noisy");
});

test("machine info names the CPU, cores, RAM and OS", () => {
  const m = loadMachineInfo();
  expect(m.cpu.length).toBeGreaterThan(0);
  expect(m.cores).toBeGreaterThanOrEqual(1);
  expect(m.ramGiB).toBeGreaterThan(0);
  expect(m.os).toMatch(/^\w+ \S+ \w+$/);
  expect(renderMachine(m)).toBe(`${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB, ${m.os}`);
});

test("the git commit is a short hash (maybe -dirty) in a checkout, unknown elsewhere", async () => {
  expect(await loadGitCommit()).toMatch(/^[0-9a-f]{10}(-dirty)?$/);
  t = makeTempHome();
  expect(await loadGitCommit(t.dir)).toBe("unknown");
});

test("memory probe: the engine's read bandwidth on 1..N threads, and the clock", async () => {
  const m = await measureMemoryBandwidth({ threads: 2, runs: 2 });
  expect([m.threads, m.bufferMiB, m.byThreads.map((r) => r.threads), m.oneThreadGBs.n, m.allThreadsGBs.n]).toEqual([2, 64, [1, 2], 2, 2]);
  for (const r of m.byThreads) {
    expect(r.gbs.min).toBeGreaterThan(0);
    expect(r.gbs.min).toBeLessThanOrEqual(r.gbs.median);
    expect(r.gbs.median).toBeLessThanOrEqual(r.gbs.max);
  }
  expect(m.allThreadsGBs).toEqual(m.byThreads[1]!.gbs);
  // decode's ceiling is the entry for the engine's thread count; more threads than measured take the most measured
  expect(readBandwidthFor(m, 1)).toBe(m.byThreads[0]!.gbs.median);
  expect(readBandwidthFor(m, 8)).toBe(m.byThreads[1]!.gbs.median);
  if (process.arch === "x64" || process.arch === "arm64") expect(m.clockGHz).toBeGreaterThan(0.3);
});

test("evicting files drops them (only them) from the page cache, checked with mincore", async () => {
  t = makeTempHome();
  const a = join(t.dir, "a.bin");
  const b = join(t.dir, "b.bin");
  writeFileSync(a, Buffer.alloc(4 << 20, 7));
  writeFileSync(b, Buffer.alloc(4 << 20, 9));
  readFileSync(a);
  readFileSync(b);
  const r = await evictFiles([a]);
  if (process.platform !== "linux") return; // macOS: purge (root), not per file
  expect(r.ok).toBe(true);
  expect(r.bytes).toBe(4 << 20);
  expect(r.residentAfter).toBe(0);
  // b was not evicted: asking again about it alone shows it resident before
  const rb = await evictFiles([b]);
  expect(rb.residentBefore).toBeGreaterThan(0);
  const missing = await evictFiles([join(t.dir, "nope")]);
  expect(missing.ok).toBe(false);
  expect(missing.note).toContain("nope");
});

test("disk probe: warm reads measured, cold ones skipped when disabled, and the probe file removed", async () => {
  t = makeTempHome();
  const d = await measureDiskBandwidth(t.dir, { fileMiB: 8, runs: 2, cold: false });
  expect(d.coldGBs).toBeNull();
  expect(d.note).toContain("not measured");
  expect(d.warmGBs.n).toBe(3);
  expect(readdirSync(t.dir).filter((f) => f.startsWith(".disk-probe"))).toEqual([]);
});

test("disk probe, cold: the probe file alone is evicted before each cold read (Linux)", async () => {
  if (process.platform !== "linux") return;
  t = makeTempHome();
  const d = await measureDiskBandwidth(t.dir, { fileMiB: 8, runs: 2 });
  expect(d.note).toContain("evicted from the page cache");
  expect(d.coldGBs?.n).toBe(2);
});

test("the profile is measured once, cached in the data dir, and re-measured on request", async () => {
  t = makeTempHome();
  const config = { paths: resolvePaths(t.env, t.dir), artifactsDir: join(t.dir, "no-models-yet") };
  const opts = { memory: { runs: 2 }, disk: { fileMiB: 4, runs: 2, cold: false } };
  const first = await loadMachineProfile(config, opts);
  expect(machineProfilePath(config)).toBe(join(t.env.XDG_DATA_HOME, "flashchat", "bench", "machine.json"));
  const dataBench = join(t.env.XDG_DATA_HOME, "flashchat", "bench");
  expect(first.disk.dir).toBe(dataBench);
  const cached = JSON.parse(readFileSync(machineProfilePath(config), "utf8"));
  expect([cached.memory, cached.disks[dataBench]]).toEqual([first.memory, first.disk]);
  const second = await loadMachineProfile(config, opts);
  expect(second).toEqual(first);
  // another disk folder: only that disk is measured; the memory figures stay
  const other = await loadMachineProfile(config, { ...opts, diskDir: t.dir });
  expect([other.disk.dir, other.memory, other.measuredAt]).toEqual([t.dir, first.memory, first.measuredAt]);
  expect(Object.keys(JSON.parse(readFileSync(machineProfilePath(config), "utf8")).disks).sort()).toEqual([dataBench, t.dir].sort());
  await Bun.sleep(2);
  const third = await loadMachineProfile(config, { ...opts, remeasure: true });
  expect(third.measuredAt).not.toBe(first.measuredAt);
  expect(renderProfile(third)).toContain("memory read:");
  expect(existsSync(join(t.env.XDG_DATA_HOME, "flashchat", "bench"))).toBe(true);
});
