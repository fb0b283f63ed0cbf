// Benchmark target `tui`: it times the real TUI and its `bun -e` baseline in tmux and reports a ratio and memory.
import { expect, test } from "bun:test";
import { runTuiBench } from "../../lib/bench/tui.ts";
import { hasTmux } from "../tmux/tmux.ts";

test.skipIf(!hasTmux)("benchmark tui: first frame, baseline and OpenTUI floor measured the same way, ratios and memory reported", async () => {
  const r = await runTuiBench({ runs: 2, warmup: 0 });
  expect(r.firstFrameMs.n).toBe(2);
  expect(r.bunMs.n).toBe(2);
  expect(r.firstFrameMs.min).toBeGreaterThan(0);
  expect(r.ratio).toBeCloseTo(r.firstFrameMs.median / r.bunMs.median, 6);
  // the floor (the least OpenTUI program) timed the same way, in turns
  expect(r.floorMs.n).toBe(2);
  expect(r.floorMs.min).toBeGreaterThan(0);
  expect(r.floorRatio).toBeCloseTo(r.firstFrameMs.median / r.floorMs.median, 6);
  if (process.platform === "linux") expect(r.rssMiB.median).toBeGreaterThan(10); // a bun process with the TUI loaded
  expect(r.steps).toBeUndefined();
  if (process.platform === "linux") expect(r.cpuMs!.tui.median).toBeGreaterThan(r.cpuMs!.bun.median); // the TUI does more than print a line
}, 120_000);

test.skipIf(!hasTmux)("benchmark tui --steps: the TUI's own -v start-up steps, each timed, the config read after the first frame", async () => {
  const r = await runTuiBench({ runs: 2, warmup: 0, steps: true });
  const steps = r.steps!;
  const beforeFrame = ["OpenTUI imported", "renderer made", "views imported", "views built", "terminal set up", "first frame drawn"];
  for (const name of [...beforeFrame, "config read"]) expect(steps[name]?.n).toBe(2);
  // listed in the order they happen
  expect(Object.keys(steps)).toEqual([...beforeFrame, "first frame (since the process started)", "config read"]);
  const sum = beforeFrame.reduce((a, n) => a + steps[n]!.median, 0);
  // the steps run one after another after the process started: together no later than the first frame
  expect(steps["first frame (since the process started)"]!.median).toBeGreaterThanOrEqual(sum * 0.9);
}, 120_000);
