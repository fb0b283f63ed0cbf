// Quantization in worker threads gives exactly the bytes of the single-threaded path.
import { afterAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import { extractWeights } from "../../lib/model/extract.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { FIXTURE, FIXTURE_HF, makeTempDir, removeDir } from "./_helpers.ts";

const tmp = makeTempDir();
afterAll(() => removeDir(tmp));

test("extract (HF, row blocks in 2 workers) = inline", async () => {
  const a = await extractWeights({ checkpointDir: FIXTURE_HF, outDir: join(tmp, "xa"), workers: 0 });
  const b = await extractWeights({ checkpointDir: FIXTURE_HF, outDir: join(tmp, "xb"), workers: 2, quantBlockBytes: 4096 });
  expect(readFileSync(b.weightsBin).equals(readFileSync(a.weightsBin))).toBe(true);
  expect(readFileSync(b.weightsJson, "utf8")).toBe(readFileSync(a.weightsJson, "utf8"));
});

test("repack (HF 4-bit and MLX -> 2-bit, experts in 2 workers) = inline; the parallel --verify names a bad byte", async () => {
  for (const [src, bits, name] of [[FIXTURE_HF, 4, "hf"], [FIXTURE, 2, "mlx2"]] as const) {
    const a = await repackExperts({ checkpointDir: src, outDir: join(tmp, `${name}-a`), bits, workers: 0 });
    const b = await repackExperts({ checkpointDir: src, outDir: join(tmp, `${name}-b`), bits, workers: 2, verify: true });
    for (const l of [0, 1, 2, 3]) expect(readFileSync(join(b.dir, `layer_0${l}.bin`)).equals(readFileSync(join(a.dir, `layer_0${l}.bin`)))).toBe(true);
  }
  const p = join(tmp, "hf-b/packed_experts/layer_01.bin");
  const bytes = readFileSync(p);
  bytes[6 * 16384 + 4096 + 3] ^= 0x10; // expert 6, gate_proj.scales byte 3
  writeFileSync(p, bytes);
  await expect(repackExperts({ checkpointDir: FIXTURE_HF, outDir: join(tmp, "hf-b"), layers: "1", workers: 2, verify: true })).rejects.toThrow(
    "verify failed: layer_01.bin: expert 6, gate_proj.scales byte 3",
  );
});
