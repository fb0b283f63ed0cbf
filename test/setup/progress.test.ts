import { expect, test } from "bun:test";
import { formatBytes, formatDuration } from "../../lib/format.ts";
import { createByteProgress, renderProgressLine } from "../../lib/progress.ts";

test("formatBytes uses decimal units", () => {
  expect([0, 999, 1000, 1234567, 209e9, 1.5e12].map(formatBytes)).toEqual(["0 B", "999 B", "1.0 KB", "1.2 MB", "209 GB", "1.5 TB"]);
});

test("formatDuration", () => {
  expect([0, 42, 185, 7800, Number.NaN].map(formatDuration)).toEqual(["0s", "42s", "3m05s", "2h10m", "--"]);
});

test("a progress line shows percent, bar, bytes, rate and ETA", () => {
  const line = renderProgressLine({ label: "download", doneBytes: 50e6, totalBytes: 200e6, rateBytesPerSec: 10e6 }, 100);
  expect(line).toMatch(/^download  25% \[#+\.+\] 50\.0 MB \/ 200 MB  10\.0 MB\/s  ETA 15s$/);
});

test("on a terminal the bar redraws in place and ends with a newline", () => {
  let out = "";
  let t = 0;
  const p = createByteProgress({ label: "dl", totalBytes: 1000, stream: { isTTY: true, columns: 80, write: (s: string) => (out += s) }, nowMs: () => t });
  p.skip(200);
  t = 1000;
  p.add(300);
  t = 2000;
  p.add(500);
  p.done();
  expect(out.startsWith("\r")).toBe(true);
  expect(out).toContain("100%");
  expect(out.endsWith("\n")).toBe(true);
});

test("without a terminal: a log line now and then, never a redraw", async () => {
  const { logger } = await import("../../lib/log.ts");
  const lines: string[] = [];
  const orig = logger.info;
  logger.info = ((m: string) => void lines.push(m)) as typeof logger.info;
  try {
    let out = "";
    let t = 0;
    const p = createByteProgress({ label: "dl", totalBytes: 1000, stream: { isTTY: false, write: (s: string) => (out += s) }, nowMs: () => t, logEveryMs: 1000 });
    p.add(100);
    t = 500;
    p.add(100);
    t = 1500;
    p.add(300);
    p.done();
    expect(out).toBe("");
    expect(lines[0]).toMatch(/^dl  50% \[#+\.+\] 500 B \/ 1\.0 KB/);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/^dl: 500 B in 1\.5s/);
  } finally {
    logger.info = orig;
  }
});
