import { afterEach, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "pathe";
import { checkMachineLoad, loadGitCommit, loadMachineInfo, loadMachineProfile, machineProfilePath, measureDiskBandwidth, measureMemoryBandwidth, renderMachine, renderProfile } from "../../lib/bench/machine.ts";
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

test("memory probe: summaries of copy bandwidth on one and on all threads", async () => {
  const m = await measureMemoryBandwidth({ bufferMiB: 4, threads: 2, warmup: 1, runs: 2, copiesPerRun: 1 });
  expect([m.threads, m.bufferMiB, m.oneThreadGBs.n, m.allThreadsGBs.n]).toEqual([2, 4, 2, 2]);
  expect(m.oneThreadGBs.min).toBeGreaterThan(0);
});

test("disk probe: warm reads measured, cold ones skipped when disabled, and the probe file removed", async () => {
  t = makeTempHome();
  const d = await measureDiskBandwidth(t.dir, { fileMiB: 8, runs: 2, cold: false });
  expect(d.coldGBs).toBeNull();
  expect(d.note).toContain("not measured");
  expect(d.warmGBs.n).toBe(3);
  expect(readdirSync(t.dir).filter((f) => f.startsWith(".disk-probe"))).toEqual([]);
});

test("the profile is measured once, cached in the data dir, and re-measured on request", async () => {
  t = makeTempHome();
  const config = { paths: resolvePaths(t.env, t.dir), artifactsDir: join(t.dir, "no-models-yet") };
  const opts = { memory: { bufferMiB: 2, runs: 2, warmup: 0 }, disk: { fileMiB: 4, runs: 2, cold: false } };
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
  expect(renderProfile(third)).toContain("memory copy:");
  expect(existsSync(join(t.env.XDG_DATA_HOME, "flashchat", "bench"))).toBe(true);
});
