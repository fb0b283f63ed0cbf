// `flashchat config` through the real script: piped --reset keeps model and port, unset, edit with $EDITOR
// (validated, the old file kept when the edit is invalid), unknown actions.
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { xdgEnv } from "../helpers/cli.ts";

// these tests spawn processes: give them room on a busy machine
setDefaultTimeout(30_000);

const script = join(import.meta.dir, "../../scripts/config.ts");
const home = mkdtempSync(join(tmpdir(), "fc-config-cli-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));
const env = xdgEnv(home);
delete env.CI;
for (const k of Object.keys(env)) if (k.startsWith("FLASHCHAT_") || k === "VISUAL" || k === "EDITOR") delete env[k];
const file = join(home, "c/flashchat/config");

async function run(args: string[], extra: Record<string, string> = {}) {
  const proc = Bun.spawn([process.execPath, script, ...args], { env: { ...env, ...extra }, cwd: home, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
  return { stdout, stderr, code };
}

const active = () => readFileSync(file, "utf8").split("\n").filter((l) => l && !l.startsWith("#"));

test("piped config --reset writes the defaults but keeps the user's model and port", async () => {
  for (const [k, v] of [["MODEL_REPO", "demo"], ["SERVER_PORT", "9123"], ["TEMPERATURE", "0.3"]]) expect((await run(["set", k!, v!])).code).toBe(0);
  const r = await run(["--reset"]);
  expect(r.code).toBe(0);
  expect(r.stderr).toContain("keeping MODEL_REPO=demo and SERVER_PORT=9123");
  expect(active()).toContain('MODEL_REPO="demo"');
  expect(active()).toContain('SERVER_PORT="9123"');
  expect(active()).toContain('TEMPERATURE="0.7"');
});

test("config unset KEY removes it from the user file; unsetting it again says so; unknown keys are errors", async () => {
  expect((await run(["set", "TOP_P", "0.5"])).code).toBe(0);
  const r = await run(["unset", "top_p"]);
  expect(r.code).toBe(0);
  expect(active().some((l) => l.startsWith("TOP_P="))).toBe(false);
  expect(readFileSync(file, "utf8")).toContain('# TOP_P="0.9"'); // the commented template line stays
  expect((await run(["get", "TOP_P"])).stdout.trim()).toBe("0.9");
  const again = await run(["unset", "TOP_P"]);
  expect(again.code).toBe(0);
  expect(again.stderr).toContain("TOP_P is not set in");
  const bad = await run(["unset", "TOP_Q"]);
  expect(bad.code).not.toBe(0);
  expect(bad.stderr).toContain("unknown setting TOP_Q (did you mean TOP_P?)");
  const action = await run(["unsett", "TOP_P"]);
  expect(action.code).toBe(2);
  expect(action.stderr).toContain('did you mean "unset"?');
});

test("config edit: $EDITOR edits a copy; a valid edit replaces the file, an invalid one keeps it and says what is wrong", async () => {
  const editor = join(home, "editor.sh");
  writeFileSync(editor, '#!/bin/sh\nprintf \'%s\\n\' "$EDIT_LINE" >> "$1"\n', { mode: 0o755 });
  const before = readFileSync(file, "utf8");
  const bad = await run(["edit"], { EDITOR: editor, EDIT_LINE: 'TEMPERATURE="abc"' });
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/line \d+: invalid TEMPERATURE "abc": expected a number from 0 to 2/);
  expect(bad.stderr).toContain("is unchanged");
  expect(readFileSync(file, "utf8")).toBe(before);
  expect(readFileSync(join(home, "c/flashchat/config.rejected"), "utf8")).toContain('TEMPERATURE="abc"');
  const typo = await run(["edit"], { EDITOR: editor, EDIT_LINE: 'TEMPRATURE="1"' });
  expect(typo.stderr).toContain("unknown setting TEMPRATURE (did you mean TEMPERATURE?)");
  expect(readFileSync(file, "utf8")).toBe(before);
  // VISUAL wins over EDITOR
  const good = await run(["edit"], { VISUAL: editor, EDITOR: "false", EDIT_LINE: 'TEMPERATURE="1.1"' });
  expect(good.code).toBe(0);
  expect(active().at(-1)).toBe('TEMPERATURE="1.1"');
  expect((await run(["get", "TEMPERATURE"])).stdout.trim()).toBe("1.1");
  // an editor that fails changes nothing
  const failed = await run(["edit"], { EDITOR: "false" });
  expect(failed.code).toBe(1);
  expect(failed.stderr).toContain("exited with status 1");
  for (const r of [bad, typo, failed]) expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(existsSync(file)).toBe(true);
});
