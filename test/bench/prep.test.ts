// The prep benchmark's pipeline at toy scale (warm only: dropping the page cache would slow the whole machine).
import { afterAll, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "pathe";
import { renderPrepTable, runPrepBench } from "../../lib/bench/prep.ts";
import { makeTempDir, removeDir } from "../model/_helpers.ts";

const tmp = makeTempDir("flashchat-prep-");
afterAll(() => removeDir(tmp));

test("generates the checkpoint once, times cp / extract / repack, reports medians, GB/s and peak RSS", async () => {
  const opts = { dir: tmp, preset: "tiny", layers: 2, runs: 1, modes: ["warm" as const] };
  const { results, coldAvailable, checkpointBytes } = await runPrepBench(opts);
  expect(coldAvailable).toBeNull();
  expect(checkpointBytes).toBeGreaterThan(100_000);
  expect(results.map((r) => [r.mode, r.tool])).toEqual([["warm", "cp"], ["warm", "extract-weights"], ["warm", "repack-experts"]]);
  expect(results[0]!.bytes).toBe(checkpointBytes);
  expect(results[2]!.bytes).toBe(2 * 131072); // two layers of packed experts
  for (const r of results) {
    expect(r.seconds.n).toBe(1);
    expect(r.gbPerSec.median).toBeGreaterThan(0);
    expect(r.maxRssMB).toBeGreaterThan(1);
  }
  expect(existsSync(join(tmp, "out-cp"))).toBe(false); // outputs are removed after each run
  const table = renderPrepTable(results);
  expect(table.split("\n")).toHaveLength(4);
  expect(table).toContain("1.00x");
  // a second run reuses the generated checkpoint
  const shard = join(tmp, "checkpoint/model-00001-of-00001.safetensors");
  const before = statSync(shard).mtimeMs;
  const again = await runPrepBench({ ...opts, tools: ["cp"] });
  expect(again.checkpointBytes).toBe(checkpointBytes);
  expect(statSync(shard).mtimeMs).toBe(before);
}, 60_000);
