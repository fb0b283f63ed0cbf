import { afterAll, expect, test } from "bun:test";
import { UserError } from "../../lib/errors.ts";
import { checkFreeDisk, freeDiskBytes } from "../../lib/fs.ts";
import { type ProgressEvent, renderProgress } from "../../lib/progress.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { FIXTURE, makeTempDir, removeDir } from "./_helpers.ts";

const tmp = makeTempDir();
afterAll(() => removeDir(tmp));

test("free-space check names the bytes needed", () => {
  expect(freeDiskBytes(`${tmp}/not/yet/there`)).toBeGreaterThan(0);
  expect(() => checkFreeDisk(tmp, 1024, "a small file")).not.toThrow();
  let err: unknown;
  try {
    checkFreeDisk(tmp, 9e18, "packed experts");
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UserError);
  expect((err as Error).message).toContain(`not enough free disk for packed experts: it needs 9000 PB in ${tmp}`);
});

test("progress events carry bytes/s and ETA and reach the total", async () => {
  const events: ProgressEvent[] = [];
  await repackExperts({ checkpointDir: FIXTURE, outDir: tmp, onProgress: (e) => events.push(e) });
  expect(events.length).toBeGreaterThanOrEqual(4); // at least one per layer
  const last = events.at(-1)!;
  expect(last.doneBytes).toBe(last.totalBytes);
  expect(last.totalBytes).toBe(4 * 131072);
  expect(last.bytesPerSec).toBeGreaterThan(0);
  expect(last.etaSec).toBe(0);
  expect(renderProgress({ label: "repack", doneBytes: 5e8, totalBytes: 1e9, bytesPerSec: 2.5e8, etaSec: 2, detail: "layer_03.bin" })).toBe(
    "repack: 500 MB / 1.0 GB (50.0%), 250 MB/s, ETA 2s — layer_03.bin",
  );
});
