// The docs stay true to the code: every setting and command is documented, the README keeps its two commands.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "pathe";
import { COMMANDS } from "../../lib/commands.ts";
import { KEYS } from "../../lib/config/schema.ts";
import { repoRoot } from "../helpers/cli.ts";

const run = readFileSync(join(repoRoot, "RUN.md"), "utf8");
const readme = readFileSync(join(repoRoot, "README.md"), "utf8");

describe("RUN.md", () => {
  test("documents every setting with its default and environment variable", () => {
    for (const k of KEYS) {
      const row = run.split("\n").find((l) => l.startsWith(`| \`${k.key}\` |`));
      expect({ key: k.key, row: Boolean(row) }).toEqual({ key: k.key, row: true });
      expect(row).toContain(`\`FLASHCHAT_${k.key}\``);
      expect(row).toContain(k.default === "" ? '`""`' : `\`${k.default}\``);
    }
  });

  test("the project layout names every source file", () => {
    const tracked = Bun.spawnSync(["git", "ls-files", "scripts", "lib", "native"], { cwd: repoRoot }).stdout.toString().split("\n");
    const missing = tracked.filter((f) => /\.(ts|c|h|m|metal)$|Makefile$/.test(f) && !run.includes(`| \`${f}\` |`));
    expect(missing).toEqual([]);
  });

  test("documents every command", () => {
    for (const c of COMMANDS) expect(run).toMatch(new RegExp(`\\| \`${c.name}[ \`]`));
  });
});

describe("README.md", () => {
  test("keeps the set-up-and-run command and the test command", () => {
    expect(readme).toContain("make demo");
    expect(readme).toContain("make test");
  });
});
