import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import type { ExpertsLayout } from "../../lib/model/expert-layout.ts";
import { parseLayerList, repackExperts } from "../../lib/model/repack.ts";
import { loadTensorIndex, readTensorBytes } from "../../lib/model/safetensors.ts";
import { inspectArtifacts } from "../../lib/model/artifacts.ts";
import { FIXTURE, FIXTURE_HF, makeTempDir, removeDir } from "./_helpers.ts";

const tmp = makeTempDir();
afterAll(() => removeDir(tmp));

describe("repackExperts on the MLX fixture", async () => {
  const out = join(tmp, "a");
  const r = await repackExperts({ checkpointDir: FIXTURE, outDir: out, verify: true, repo: "tiny" });
  const layout: ExpertsLayout = JSON.parse(readFileSync(join(r.dir, "layout.json"), "utf8"));
  const src = loadTensorIndex(FIXTURE).tensors;

  test("layout.json as in ARTIFACTS.md", () => {
    expect(r.dir).toBe(join(out, "packed_experts"));
    expect(r.layersWritten).toEqual([0, 1, 2, 3]);
    expect(layout).toMatchObject({ format: "flashchat-experts", version: 1, bits: 4, group_size: 64, num_experts: 8, hidden_size: 128, moe_intermediate_size: 64, expert_size: 16384 });
    expect(layout.components.map((c) => [c.name, c.dtype, c.shape, c.offset, c.size])).toEqual([
      ["gate_proj.weight", "U32", [64, 16], 0, 4096],
      ["gate_proj.scales", "BF16", [64, 2], 4096, 256],
      ["gate_proj.biases", "BF16", [64, 2], 4352, 256],
      ["up_proj.weight", "U32", [64, 16], 4608, 4096],
      ["up_proj.scales", "BF16", [64, 2], 8704, 256],
      ["up_proj.biases", "BF16", [64, 2], 8960, 256],
      ["down_proj.weight", "U32", [128, 8], 9216, 4096],
      ["down_proj.scales", "BF16", [128, 1], 13312, 256],
      ["down_proj.biases", "BF16", [128, 1], 13568, 256],
    ]);
    expect(layout.layers.map((l) => [l.layer, l.file, l.size])).toEqual([0, 1, 2, 3].map((l) => [l, `layer_0${l}.bin`, 131072]));
  });

  test("expert E's components are the E-th slices of the stacked tensors; padding is zero", () => {
    for (const l of [0, 3]) {
      const file = readFileSync(join(r.dir, `layer_0${l}.bin`));
      expect(file.length).toBe(8 * 16384);
      for (let e = 0; e < 8; e++) {
        let end = 0;
        for (const c of layout.components) {
          const t = src.get(`language_model.model.layers.${l}.mlp.switch_mlp.${c.name}`)!;
          const all = readTensorBytes(t);
          const slice = all.subarray(e * c.size, (e + 1) * c.size);
          const at = e * 16384 + c.offset;
          expect(Buffer.from(file.subarray(at, at + c.size)).equals(Buffer.from(slice))).toBe(true);
          end = c.offset + c.size;
        }
        expect(file.subarray(e * 16384 + end, (e + 1) * 16384).every((b) => b === 0)).toBe(true);
      }
    }
  });

  test("a re-run skips finished layers", async () => {
    const again = await repackExperts({ checkpointDir: FIXTURE, outDir: out, repo: "tiny" });
    expect(again.layersWritten).toEqual([]);
    expect(again.layersSkipped).toEqual([0, 1, 2, 3]);
  });

  test("--verify names the first wrong byte; the resume check rewrites a layer whose checked experts differ", async () => {
    const p = join(r.dir, "layer_02.bin");
    const good = readFileSync(p);
    const bad = Buffer.from(good);
    bad[5 * 16384 + 4608 + 10] ^= 0xff; // expert 5 (not spot-checked), up_proj.weight byte 10
    writeFileSync(p, bad);
    await expect(repackExperts({ checkpointDir: FIXTURE, outDir: out, layers: "2", verify: true })).rejects.toThrow(
      "verify failed: layer_02.bin: expert 5, up_proj.weight byte 10",
    );
    const bad0 = Buffer.from(good);
    bad0[0 * 16384 + 9216 + 1] ^= 0x01; // expert 0 (spot-checked), down_proj.weight
    writeFileSync(p, bad0);
    const fixed = await repackExperts({ checkpointDir: FIXTURE, outDir: out, layers: "2", verify: true });
    expect(fixed.layersWritten).toEqual([2]);
    expect(readFileSync(p).equals(good)).toBe(true);
  });

  test("parseLayerList", () => {
    expect(parseLayerList("0-4,7")).toEqual([0, 1, 2, 3, 4, 7]);
    expect(parseLayerList("3, 1,1")).toEqual([1, 3]);
    expect(() => parseLayerList("4-2")).toThrow("backwards");
    expect(() => parseLayerList("x")).toThrow("cannot read");
  });
});

test("re-packing at other bits into the same folder never leaves a layout.json describing the old files", async () => {
  const out = join(tmp, "rebits");
  await repackExperts({ checkpointDir: FIXTURE_HF, outDir: out });
  const r8 = await repackExperts({ checkpointDir: FIXTURE_HF, outDir: out, bits: 8, layers: "0" });
  const layout: ExpertsLayout = JSON.parse(readFileSync(join(r8.dir, "layout.json"), "utf8"));
  expect(layout.bits).toBe(8);
  expect(layout.layers.map((l) => l.layer)).toEqual([0]); // the 4-bit files of layers 1-3 are not listed
  expect(inspectArtifacts(out).experts).toMatchObject({ bits: 8, layersPresent: [0], layersBad: [1, 2, 3], complete: false });
});
