import { afterAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "pathe";
import { runCli, scriptFile, xdgEnv } from "../helpers/cli.ts";
import { FIXTURE, makeTempDir, removeDir } from "../model/_helpers.ts";

const script = scriptFile("extract-weights");
const tmp = makeTempDir();
afterAll(() => removeDir(tmp));
const env = { ...xdgEnv(tmp), NO_COLOR: "1" };
const run = (...args: string[]) => runCli(args, { env, script });

test("importing the script has no side effects", async () => {
  const mod = await import(script);
  expect(mod.default.meta.name).toBe("extract-weights");
});

test("--help", async () => {
  const r = await run("--help");
  expect(r.code).toBe(0);
  expect(r.stdout + r.stderr).toContain("--model");
});

test("writes the weights of the fixture", async () => {
  const out = join(tmp, "out");
  const r = await run("--model", FIXTURE, "--out", out);
  expect(r.stderr).toContain("146 tensors");
  expect(r.code).toBe(0);
  expect(existsSync(join(out, "model_weights.bin"))).toBe(true);
  expect(existsSync(join(out, "model_weights.json"))).toBe(true);
});

test("user mistakes are one line and exit 1", async () => {
  for (const args of [["--out", tmp], ["--model", join(tmp, "nope"), "--out", tmp], ["--model", tmp, "--out", join(tmp, "x")], ["--model", FIXTURE, "--out", tmp, "--bits", "3"]]) {
    const r = await run(...args);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain(" at ");
  }
});
