import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { withLock } from "../../lib/setup/lock.ts";

let dir = "";
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test("the lock is held while the work runs and released after, even on failure", async () => {
  dir = mkdtempSync(join(tmpdir(), "flashchat-lock-"));
  const lock = join(dir, "locks", "a.lock");
  expect(await withLock(lock, "m", async (waited) => (expect(existsSync(lock)).toBe(true), waited))).toBe(false);
  expect(existsSync(lock)).toBe(false);
  await expect(withLock(lock, "m", async () => { throw new Error("boom"); })).rejects.toThrow("boom");
  expect(existsSync(lock)).toBe(false);
});

test("a lock left by a process that is gone is taken over at once", async () => {
  dir = mkdtempSync(join(tmpdir(), "flashchat-lock-"));
  const lock = join(dir, "a.lock");
  const gone = Bun.spawnSync(["true"]).pid;
  writeFileSync(lock, `${gone}\n`);
  expect(await withLock(lock, "m", async (waited) => waited)).toBe(false);
});

test("two setups of one model: the second waits for the first, then looks again", async () => {
  dir = mkdtempSync(join(tmpdir(), "flashchat-lock-"));
  const lock = join(dir, "a.lock");
  const order: string[] = [];
  let release!: () => void;
  const first = withLock(lock, "m", async () => {
    order.push("first start");
    await new Promise<void>((r) => (release = r));
    order.push("first end");
  }, 10);
  expect(order).toEqual(["first start"]); // taken synchronously
  const second = withLock(lock, "m", async (waited) => {
    order.push(`second (waited: ${waited})`);
  }, 10);
  await Bun.sleep(50); // several polls of the second: it must still be waiting
  expect(order).toEqual(["first start"]);
  release();
  await Promise.all([first, second]);
  expect(order).toEqual(["first start", "first end", "second (waited: true)"]);
});
