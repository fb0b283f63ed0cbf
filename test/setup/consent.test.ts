import { expect, test } from "bun:test";
import { tmpdir } from "node:os";
import { UserError } from "../../lib/errors.ts";
import { askConsent, checkDisks, LARGE_WRITE_BYTES, needsConsent, renderPlan } from "../../lib/setup/consent.ts";
import { isInteractive } from "../../lib/term.ts";
import type { SetupPlan, SetupStep } from "../../lib/setup/plan.ts";

const step = (o: Partial<SetupStep>): SetupStep => ({ id: "extract", title: "extract weights", done: false, detail: "", downloadBytes: 0, writeBytes: 0, ...o });
const plan = (steps: SetupStep[], notes: string[] = []): SetupPlan =>
  ({ target: { repo: "org/model", entry: undefined }, steps, notes } as unknown as SetupPlan);

test("consent is needed for any download or a large write, not for small local work", () => {
  expect(needsConsent(plan([step({ id: "engine", title: "engine" }), step({ writeBytes: 50e6, writeDir: tmpdir() })]))).toBe(false);
  expect(needsConsent(plan([step({ writeBytes: LARGE_WRITE_BYTES, writeDir: tmpdir() })]))).toBe(true);
  expect(needsConsent(plan([step({ id: "download", downloadBytes: 1, writeBytes: 1, writeDir: tmpdir() })]))).toBe(true);
  expect(needsConsent(plan([step({ done: true, downloadBytes: 1e12 })]))).toBe(false);
});

test("the screen lists every step, the totals and the free disk", () => {
  const text = renderPlan(
    plan(
      [
        step({ id: "deps", title: "dependencies", done: true, detail: "installed" }),
        step({ id: "download", title: "download", detail: "12 files of org/model", downloadBytes: 2e15, writeBytes: 2e15, writeDir: tmpdir() }),
        step({ detail: "dense weights", writeBytes: 5.5e9, writeDir: tmpdir(), estimated: true }),
      ],
      ["a note"],
    ),
  );
  expect(text).toContain("Setting up org/model");
  expect(text).toMatch(/✔ dependencies +installed/);
  expect(text).toMatch(/• download +12 files of org\/model  \[download 2.0 PB\]/);
  expect(text).toMatch(/• extract weights +dense weights  \[write ≈5\.5 GB\]/);
  expect(text).toContain("To download: 2.0 PB   to write: ≈2.0 PB");
  expect(text).toMatch(/Free disk: [\d.]+ [KMGTP]?B on the disk of .* \(needs 2.0 PB\)/);
  expect(text).toContain("! a note");
});

test("a disk too small for the plan stops it before anything starts", () => {
  expect(() => checkDisks(plan([step({ writeBytes: 1e18, writeDir: tmpdir() })]))).toThrow(/^not enough free disk: setting up org\/model needs about 1000 PB in /);
});

test("no prompt under CI or without a terminal: --yes is named", async () => {
  expect(isInteractive({ CI: "true" })).toBe(false);
  const p = plan([step({ id: "download", downloadBytes: 5e9, writeBytes: 5e9, writeDir: tmpdir() })]);
  const err = await askConsent(p, { interactive: false, resumeCommand: "flashchat setup --model x" }).catch((e) => e);
  expect(err).toBeInstanceOf(UserError);
  expect(err.message).toBe("setting up org/model needs your consent to download 5.0 GB and write about 5.0 GB, and there is no terminal to ask on");
  expect(err.hint).toBe("re-run with --yes to agree (e.g. flashchat setup --model x --yes)");
  await expect(askConsent(p, { yes: true, interactive: false, resumeCommand: "" })).resolves.toBeUndefined();
});
