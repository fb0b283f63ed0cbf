// The whole project type-checks under tsconfig.json (strict): scripts, lib and tests.
import { expect, test } from "bun:test";
import { join } from "pathe";
import { repoRoot } from "../helpers/cli.ts";

test("tsc --noEmit reports no errors", async () => {
  const proc = Bun.spawn([process.execPath, join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "--noEmit", "-p", repoRoot], {
    cwd: repoRoot,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  expect(out.split("\n").filter((l) => l.includes("error TS")).slice(0, 20)).toEqual([]);
  expect(code).toBe(0);
  // tsc takes longer than bun test's 5 s default on a busy machine: this test has its own limit
}, 180_000);
