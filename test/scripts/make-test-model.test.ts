import { afterAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "pathe";
import { makeTempDir, removeDir } from "../model/_helpers.ts";

const script = join(import.meta.dir, "../../scripts/make-test-model.ts");
const tmp = makeTempDir();
afterAll(() => removeDir(tmp));
const env = { ...process.env, HOME: tmp, XDG_CONFIG_HOME: join(tmp, "c"), XDG_DATA_HOME: join(tmp, "d"), XDG_CACHE_HOME: join(tmp, "k"), NO_COLOR: "1" };

async function run(...args: string[]) {
  await using proc = Bun.spawn([process.execPath, script, ...args], { stdout: "pipe", stderr: "pipe", env });
  const [stdout, stderr, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
  return { stdout, stderr, code };
}

test("importing the script has no side effects", async () => {
  expect((await import(script)).default.meta.name).toBe("make-test-model");
});

test("writes a tiny model; mistakes are one line and exit 1", async () => {
  const out = join(tmp, "m");
  const r = await run("--preset", "tiny", "--out", out, "--seed", "5");
  expect(r.code).toBe(0);
  expect(existsSync(join(out, "config.json"))).toBe(true);
  expect(existsSync(join(out, "model-00001-of-00001.safetensors"))).toBe(true);
  for (const args of [["--preset", "huge", "--out", out], ["--out", out, "--layers", "x"], ["--preset", "tiny"]]) {
    const bad = await run(...args);
    expect(bad.code).toBe(1);
    expect(bad.stderr).not.toContain(" at ");
  }
});
