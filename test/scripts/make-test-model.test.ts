import { afterAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "pathe";
import { runCli, scriptFile, xdgEnv } from "../helpers/cli.ts";
import { makeTempDir, removeDir } from "../model/_helpers.ts";

const script = scriptFile("make-test-model");
const tmp = makeTempDir();
afterAll(() => removeDir(tmp));
const env = { ...xdgEnv(tmp), NO_COLOR: "1" };
const run = (...args: string[]) => runCli(args, { env, script });

test("importing the script has no side effects", async () => {
  expect((await import(script)).default.meta.name).toBe("make-test-model");
});

test("writes a tiny model; mistakes are one line and a non-zero exit", async () => {
  const out = join(tmp, "m");
  const r = await run("--preset", "tiny", "--out", out, "--seed", "5");
  expect(r.code).toBe(0);
  expect(existsSync(join(out, "config.json"))).toBe(true);
  expect(existsSync(join(out, "model-00001-of-00001.safetensors"))).toBe(true);
  // a bad flag value is a usage error (2), like every whole-number flag; the rest are failures (1)
  for (const [args, code] of [[["--preset", "huge", "--out", out], 1], [["--out", out, "--layers", "x"], 2], [["--preset", "tiny"], 1]] as const) {
    const bad = await run(...args);
    expect(bad.code).toBe(code);
    expect(bad.stderr).not.toContain(" at ");
  }
});
