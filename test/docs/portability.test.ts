// macOS is a first-class target: TypeScript in lib/ and scripts/ must not lean on Linux-only paths, flags or GNU tool
// options without saying what happens on a Mac. Every use of one (outside comments) needs a macOS branch next to it:
// the line itself or one of the 4 lines above mentions darwin / macOS / process.platform.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "pathe";

const ROOT = join(import.meta.dir, "..", "..");

/** What is Linux-only, and why. */
const LINUX_ONLY: { pattern: RegExp; what: string }[] = [
  { pattern: /["'`]\/proc\//, what: "/proc (macOS has none: sysctl, ps, task_info)" },
  { pattern: /["'`]\/sys\//, what: "/sys (macOS has none)" },
  { pattern: /\bO_DIRECT\b/, what: "O_DIRECT (not on macOS: F_NOCACHE)" },
  { pattern: /\bO_NOATIME\b|\bO_TMPFILE\b|\bO_PATH\b/, what: "Linux-only open flags" },
  { pattern: /posix_fadvise|\bfadvise\b/, what: "posix_fadvise (not on macOS)" },
  { pattern: /drop_caches/, what: "drop_caches (macOS: purge)" },
  { pattern: /["'`\s]sed\s+-i\b/, what: "GNU sed -i (BSD sed needs -i '')" },
  { pattern: /readlink\s+-f\b|\bstat\s+-c\b|\bdu\s+-b\b|\bnproc\b|\bfree\s+-[bkmg]\b|\bdate\s+-d\b|\btaskset\b|\bnumactl\b/, what: "GNU/Linux-only tools or options" },
];

const MAC_BRANCH = /darwin|macos|process\.platform/i;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|js|sh)$/.test(name)) out.push(p);
  }
  return out;
}

/** Each unguarded use: "file:line: what". Comment lines are skipped (they may name things freely). */
export function findUnguarded(text: string, file: string): string[] {
  const lines = text.split("\n");
  const found: string[] = [];
  lines.forEach((line, i) => {
    const code = line.trim();
    if (code.startsWith("//") || code.startsWith("*") || code.startsWith("/*") || code.startsWith("#")) return;
    for (const { pattern, what } of LINUX_ONLY) {
      if (!pattern.test(line)) continue;
      const near = lines.slice(Math.max(0, i - 4), i + 1).join("\n");
      if (!MAC_BRANCH.test(near)) found.push(`${file}:${i + 1}: ${what}`);
    }
  });
  return found;
}

test("lib/ and scripts/ use no Linux-only path, flag or tool option without a macOS branch beside it", () => {
  const found: string[] = [];
  for (const dir of ["lib", "scripts"]) {
    for (const f of sourceFiles(join(ROOT, dir))) found.push(...findUnguarded(readFileSync(f, "utf8"), relative(ROOT, f)));
  }
  expect(found).toEqual([]);
});

test("the check catches an unguarded use and accepts a guarded one", () => {
  expect(findUnguarded(`const s = readFileSync("/proc/meminfo", "utf8");`, "x.ts")).toEqual(["x.ts:1: /proc (macOS has none: sysctl, ps, task_info)"]);
  expect(findUnguarded(`const fd = openSync(p, constants.O_DIRECT);`, "x.ts")).toHaveLength(1);
  expect(findUnguarded(`await $\`sed -i s/a/b/ f\`;`, "x.ts")).toHaveLength(1);
  expect(findUnguarded(`if (process.platform === "linux") {\n  writeFileSync("/proc/sys/vm/drop_caches", "3");\n}`, "x.ts")).toEqual([]);
  expect(findUnguarded(`// reads /proc/self/statm on Linux`, "x.ts")).toEqual([]);
});
