// HF checkpoints that store one tensor per expert (mlp.experts.N.{gate,up,down}_proj.weight, as Qwen3-Next and
// Qwen3-MoE do) give the same artifacts as the fused layout (mlp.experts.gate_up_proj / down_proj).
import { afterAll, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "pathe";
import { describeExperts, loadCheckpoint } from "../../lib/model/checkpoint.ts";
import { extractWeights } from "../../lib/model/extract.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { loadTensorIndex, readTensorBytes, type TensorSpec, writeSafetensors } from "../../lib/model/safetensors.ts";
import { FIXTURE_HF, makeTempDir, removeDir } from "./_helpers.ts";

const tmp = makeTempDir();
afterAll(() => removeDir(tmp));

test("per-expert HF tensors = fused HF tensors", async () => {
  const split = join(tmp, "split");
  mkdirSync(split);
  copyFileSync(join(FIXTURE_HF, "config.json"), join(split, "config.json"));
  const src = loadTensorIndex(FIXTURE_HF).tensors;
  const specs: (TensorSpec & { bytes: Uint8Array })[] = [];
  for (const [name, t] of src) {
    const m = /^(.*\.mlp\.experts)\.(gate_up_proj|down_proj)$/.exec(name);
    if (!m) {
      specs.push({ name, dtype: t.dtype, shape: t.shape, bytes: readTensorBytes(t) });
      continue;
    }
    const all = readTensorBytes(t);
    const [E, R, C] = t.shape as [number, number, number];
    const per = R * C * 2;
    for (let e = 0; e < E; e++) {
      const x = all.subarray(e * per, (e + 1) * per);
      if (m[2] === "down_proj") specs.push({ name: `${m[1]}.${e}.down_proj.weight`, dtype: "BF16", shape: [R, C], bytes: x });
      else {
        specs.push({ name: `${m[1]}.${e}.gate_proj.weight`, dtype: "BF16", shape: [R / 2, C], bytes: x.subarray(0, per / 2) });
        specs.push({ name: `${m[1]}.${e}.up_proj.weight`, dtype: "BF16", shape: [R / 2, C], bytes: x.subarray(per / 2) });
      }
    }
  }
  writeSafetensors(join(split, "model.safetensors"), specs, (s, chunk, off) => chunk.set((s as (typeof specs)[number]).bytes.subarray(off, off + chunk.length)));
  const ckpt = loadCheckpoint(split);
  expect(describeExperts(ckpt)[2]!.sources.up_proj.kind).toBe("hf-per-expert");

  const a = join(tmp, "a");
  const b = join(tmp, "b");
  for (const [dir, out] of [[FIXTURE_HF, a], [split, b]] as const) {
    await extractWeights({ checkpointDir: dir, outDir: out, repo: "x" });
    await repackExperts({ checkpointDir: dir, outDir: out, repo: "x" });
  }
  for (const f of ["model_weights.bin", "model_weights.json", ...[0, 1, 2, 3].map((l) => `packed_experts/layer_0${l}.bin`)])
    expect([f, readFileSync(join(b, f)).equals(readFileSync(join(a, f)))]).toEqual([f, true]);
  const layout = (d: string) => readFileSync(join(d, "packed_experts/layout.json"), "utf8").replace(/"source_hash":"\w+"/g, "");
  expect(layout(b)).toBe(layout(a));
});
