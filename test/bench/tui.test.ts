// Benchmark target `tui`: it times the real TUI and its `bun -e` baseline in tmux and reports a ratio and memory.
import { expect, test } from "bun:test";
import { runTuiBench } from "../../lib/bench/tui.ts";
import { hasTmux } from "../tmux/tmux.ts";

test.skipIf(!hasTmux)("benchmark tui: first frame and baseline measured the same way, ratio and memory reported", async () => {
  const r = await runTuiBench({ runs: 2, warmup: 0 });
  expect(r.firstFrameMs.n).toBe(2);
  expect(r.bunMs.n).toBe(2);
  expect(r.firstFrameMs.min).toBeGreaterThan(0);
  expect(r.ratio).toBeCloseTo(r.firstFrameMs.median / r.bunMs.median, 6);
  if (process.platform === "linux") expect(r.rssMiB.median).toBeGreaterThan(10); // a bun process with the TUI loaded
}, 120_000);
