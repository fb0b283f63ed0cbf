// Crash safety: SIGKILL a running repack, check nothing that looks finished is wrong, resume, compare with an uninterrupted run.
import { afterAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "pathe";
import { xdgEnv } from "../helpers/cli.ts";
import { writeTestModel } from "../../lib/model/test-model.ts";
import { makeTempDir, removeDir } from "../model/_helpers.ts";

const script = join(import.meta.dir, "../../scripts/repack-experts.ts");
const tmp = makeTempDir();
afterAll(() => removeDir(tmp));
const env = { ...xdgEnv(tmp), NO_COLOR: "1" };

// 4 layers of 64 experts of [512 x 256]: 14 MB per layer, long enough to be killed in the middle
const dims = {
  vocab_size: 256, hidden_size: 256, num_hidden_layers: 4, full_attention_interval: 4, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64,
  linear_num_key_heads: 2, linear_num_value_heads: 4, linear_key_head_dim: 32, linear_value_head_dim: 32, linear_conv_kernel_dim: 4,
  num_experts: 64, num_experts_per_tok: 4, moe_intermediate_size: 512, shared_expert_intermediate_size: 64, max_position_embeddings: 4096, eos_token_id: [255],
};

async function repack(out: string, extra: string[] = []) {
  await using proc = Bun.spawn([process.execPath, script, "--model", join(tmp, "ckpt"), "--out", out, ...extra], { stdout: "pipe", stderr: "pipe", env });
  const [stderr, code] = await Promise.all([proc.stderr.text(), proc.exited]);
  return { stderr, code };
}

test("a SIGKILLed repack leaves no complete-looking wrong file; the resumed run is byte-identical", async () => {
  await writeTestModel({ outDir: join(tmp, "ckpt"), dims, seed: 11 });
  const ref = join(tmp, "ref");
  expect((await repack(ref)).code).toBe(0);
  const refDir = join(ref, "packed_experts");
  const refFiles = readdirSync(refDir).sort();
  expect(refFiles).toEqual(["layer_00.bin", "layer_01.bin", "layer_02.bin", "layer_03.bin", "layout.json"]);

  // kill at two moments: while the first layer is being written, and just after it was renamed into place
  for (const [i, when] of [["a", "tmp-appears"], ["b", "first-layer-done"]] as const) {
    const out = join(tmp, `killed-${i}`);
    const dir = join(out, "packed_experts");
    const proc = Bun.spawn([process.execPath, script, "--model", join(tmp, "ckpt"), "--out", out], { stdout: "ignore", stderr: "ignore", env });
    const target = when === "tmp-appears" ? join(dir, "layer_00.bin.tmp") : join(dir, "layer_00.bin");
    const deadline = Date.now() + 60_000;
    while (!existsSync(target) && proc.exitCode === null && Date.now() < deadline) await Bun.sleep(1);
    expect(proc.exitCode).toBeNull(); // still running: the kill lands mid-run
    proc.kill("SIGKILL");
    await proc.exited;
    expect(proc.signalCode).toBe("SIGKILL");
    const left = existsSync(dir) ? readdirSync(dir) : [];
    expect(left).not.toContain("layout.json");
    expect(left.filter((f) => f.endsWith(".bin")).length).toBeLessThan(4);
    // anything under a final name is complete and correct
    for (const f of left.filter((f) => f.endsWith(".bin"))) expect(readFileSync(join(dir, f)).equals(readFileSync(join(refDir, f)))).toBe(true);

    const resumed = await repack(out);
    expect(resumed.code).toBe(0);
    if (left.includes("layer_00.bin")) expect(resumed.stderr).toContain("skipping 1 finished layer(s): 0");
    expect(readdirSync(dir).sort()).toEqual(refFiles);
    for (const f of refFiles.filter((f) => f.endsWith(".bin"))) expect(readFileSync(join(dir, f)).equals(readFileSync(join(refDir, f)))).toBe(true);
    expect(readFileSync(join(dir, "layout.json"), "utf8")).toBe(readFileSync(join(refDir, "layout.json"), "utf8"));
  }
}, 120_000);
