// The Metal kernels through the emulated device (native/build/test-metal): each against its plain-C
// reference at odd sizes, with a per-op error bound. The full size set is `make -C native metal-emu-test`.
import { beforeAll, expect, test } from "bun:test";
import { join } from "pathe";
import { buildEngine, NATIVE_DIR } from "../engine/_fixture.ts";

const OPS = [
  "matvec", "matmul", "rms_norm", "l2norm_heads", "rope", "kv_store", "attn",
  "conv1d_silu", "delta_step", "router_topk", "swiglu", "add", "moe_combine", "argmax", "embed", "copy_rows",
];

beforeAll(() => buildEngine());

test("every Metal kernel matches the C reference through the emulator (focused sizes)", async () => {
  const proc = Bun.spawn([join(NATIVE_DIR, "build", "test-metal")], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expect(err).toBe("");
  for (const op of OPS) expect(out).toMatch(new RegExp(`^op ${op} +cases +[1-9]\\d* .* ok$`, "m"));
  expect(out).toMatch(/\d+ checks, 0 failures/);
  expect(code).toBe(0);
});

test("an unknown device is named in one line and exits 2", async () => {
  const proc = Bun.spawn([join(NATIVE_DIR, "build", "test-metal"), "--device", "nope"], { stdout: "pipe", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  expect(err).toContain("unknown device 'nope'");
  expect(code).toBe(2);
});
