import { afterAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "pathe";
import { runCli, scriptFile, xdgEnv } from "../helpers/cli.ts";
import { FIXTURE, makeTempDir, removeDir } from "../model/_helpers.ts";

const script = scriptFile("repack-experts");
const tmp = makeTempDir();
afterAll(() => removeDir(tmp));
const env = { ...xdgEnv(tmp), NO_COLOR: "1" };
const run = (...args: string[]) => runCli(args, { env, script });

test("importing the script has no side effects", async () => {
  const mod = await import(script);
  expect(mod.default.meta.name).toBe("repack-experts");
});

test("--help lists the options", async () => {
  const r = await run("--help");
  expect(r.code).toBe(0);
  for (const f of ["--model", "--out", "--layers", "--verify", "--bits"]) expect(r.stdout + r.stderr).toContain(f);
});

test("--layers then the rest, --verify", async () => {
  const out = join(tmp, "out");
  let r = await run("--model", FIXTURE, "--out", out, "--layers", "1-2");
  expect(r.code).toBe(0);
  expect(JSON.parse(readFileSync(join(out, "packed_experts/layout.json"), "utf8")).layers.map((l: { layer: number }) => l.layer)).toEqual([1, 2]);
  r = await run("--model", FIXTURE, "--out", out, "--verify");
  expect(r.code).toBe(0);
  expect(r.stderr).toContain("skipping 2 finished layer(s): 1, 2");
  expect(r.stderr).toContain("verified 4 layer(s)");
});

test("user mistakes are one line and exit 1", async () => {
  for (const [args, msg] of [
    [["--model", FIXTURE, "--out", tmp, "--layers", "7"], "not MoE layers"],
    [["--model", FIXTURE, "--out", tmp, "--layers", "a-b"], "--layers"],
    [["--model", FIXTURE, "--out", tmp, "--bits", "8"], "more than the checkpoint's 4 bits"],
    [["--model", FIXTURE], "--out is required"],
  ] as const) {
    const r = await run(...args);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(msg);
    expect(r.stderr).not.toContain(" at ");
  }
});
