import { afterAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "pathe";
import { artifactPaths, inspectArtifacts, layerFileName, modelSlug, resolveModelArtifactsDir } from "../../lib/model/artifacts.ts";
import { extractWeights } from "../../lib/model/extract.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { FIXTURE, makeTempDir, removeDir } from "./_helpers.ts";

const tmp = makeTempDir();
afterAll(() => removeDir(tmp));

test("folder names per model (and per bit width for checkpoints we quantize)", () => {
  expect(modelSlug("mlx-community/Qwen3.5-397B-A17B-4bit")).toBe("mlx-community--Qwen3.5-397B-A17B-4bit");
  expect(modelSlug("demo")).toBe("demo");
  expect(modelSlug("/data/models/My Model")).toMatch(/^local--My_Model-[0-9a-f]{8}$/);
  expect(modelSlug("/a/x")).not.toBe(modelSlug("/b/x"));
  const cfg = { artifactsDir: "/art", modelRepo: "Qwen/Qwen3.6-35B-A3B" };
  expect(resolveModelArtifactsDir(cfg)).toBe("/art/Qwen--Qwen3.6-35B-A3B");
  expect(resolveModelArtifactsDir(cfg, { quantizedBits: 8 })).toBe("/art/Qwen--Qwen3.6-35B-A3B-q8");
  expect(resolveModelArtifactsDir(cfg, { modelId: "demo" })).toBe("/art/demo");
  expect(artifactPaths("/art/demo")).toEqual({
    dir: "/art/demo", weightsBin: "/art/demo/model_weights.bin", weightsJson: "/art/demo/model_weights.json",
    expertsDir: "/art/demo/packed_experts", experts2bitDir: "/art/demo/packed_experts_2bit",
  });
  expect(layerFileName(7, 60)).toBe("layer_07.bin");
  expect(layerFileName(7, 120)).toBe("layer_007.bin");
});

test("inspectArtifacts follows a folder from empty to complete", async () => {
  const dir = join(tmp, "m");
  let s = inspectArtifacts(dir);
  expect(s.exists).toBe(false);
  expect(s.weightsComplete).toBe(false);
  expect(s.experts.complete).toBe(false);

  await extractWeights({ checkpointDir: FIXTURE, outDir: dir, repo: "tiny" });
  s = inspectArtifacts(dir);
  expect(s.weights).toEqual({ present: true, bytes: 330560 });
  expect(s.manifest).toMatchObject({ present: true, valid: true, sourceFormat: "mlx", repo: "tiny", bits: 4, numLayers: 4, tensors: 146, bytesExpected: 330560 });
  expect(s.weightsComplete).toBe(true);

  await repackExperts({ checkpointDir: FIXTURE, outDir: dir, layers: "1-2" });
  writeFileSync(join(dir, "packed_experts/layer_03.bin.tmp"), "partial");
  s = inspectArtifacts(dir);
  expect(s.experts).toMatchObject({ layout: true, bits: 4, layersExpected: 4, layersPresent: [1, 2], layersBad: [], tempFiles: ["layer_03.bin.tmp"], bytes: 2 * 131072, complete: false });

  await repackExperts({ checkpointDir: FIXTURE, outDir: dir });
  writeFileSync(join(dir, "packed_experts/layer_00.bin"), "short"); // damaged after the fact
  s = inspectArtifacts(dir);
  expect(s.experts).toMatchObject({ layersPresent: [1, 2, 3], layersBad: [0], tempFiles: [], complete: false });
  await repackExperts({ checkpointDir: FIXTURE, outDir: dir });
  expect(inspectArtifacts(dir).experts.complete).toBe(true);
  expect(inspectArtifacts(dir).experts2bit.complete).toBe(false);

  await repackExperts({ checkpointDir: FIXTURE, outDir: dir, bits: 2 });
  expect(inspectArtifacts(dir).experts2bit).toMatchObject({ complete: true, bits: 2, bytes: 4 * 65536 });

  writeFileSync(join(dir, "model_weights.bin"), "truncated");
  expect(inspectArtifacts(dir).weightsComplete).toBe(false);
});
