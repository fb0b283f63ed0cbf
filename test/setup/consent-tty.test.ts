// The consent screen in a real terminal (tmux): the plan, sizes and free disk, then Y/n; no leaves everything as
// it was; Ctrl-C is a no (not consola's default yes); yes sets the model up.
import { afterAll, afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "pathe";
import { hasTmux, Tmux } from "../tmux/tmux.ts";
import { createMockHub } from "../helpers/mock-hub.ts";

const ROOT = resolve(import.meta.dir, "../..");
const hub = createMockHub({ repos: { "test-org/tiny": join(ROOT, "test/fixtures/tiny-qwen35-moe") } });
const homes: string[] = [];
let term: Tmux | undefined;
afterEach(() => term?.kill());
afterAll(() => {
  hub.stop();
  for (const h of homes) rmSync(h, { recursive: true, force: true });
});

function start(): { home: string; blobs: () => string[] } {
  const home = mkdtempSync(join(tmpdir(), "fc-tmux-setup-"));
  homes.push(home);
  const env = {
    HOME: home,
    XDG_CONFIG_HOME: join(home, "c"),
    XDG_DATA_HOME: join(home, "d"),
    XDG_CACHE_HOME: join(home, "x"),
    HF_ENDPOINT: hub.url,
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    TERM: "xterm-256color",
  };
  term = new Tmux(home, [process.execPath, join(ROOT, "scripts/setup.ts"), "--model", "test-org/tiny"], env, { cwd: home });
  const blobsDir = join(home, "x/huggingface/hub/models--test-org--tiny/blobs");
  return { home, blobs: () => (existsSync(blobsDir) ? readdirSync(blobsDir) : []) };
}

test.skipIf(!hasTmux)("answering no downloads nothing and says how to resume", async () => {
  const { blobs } = start();
  const screen = await term!.waitFor("Proceed: download 817 KB", 20_000, "screen");
  expect(screen).toContain("• download");
  expect(screen).toContain("To download: 817 KB");
  expect(screen).toMatch(/Free disk: [\d.]+ [KMGT]B/);
  term!.type("n");
  term!.send("Enter");
  const after = await term!.waitFor("[exited 1]", 10_000, "screen");
  expect(after).toContain("setup cancelled: nothing was downloaded or written");
  expect(after).toContain("flashchat setup --model test-org/tiny");
  expect(blobs()).toEqual([]);
}, 40_000);

test.skipIf(!hasTmux)("Ctrl-C at the question is a no", async () => {
  const { blobs } = start();
  await term!.waitFor("Proceed: download", 20_000, "screen");
  term!.send("C-c");
  const after = await term!.waitFor(/\[exited \d+\]/, 10_000, "screen");
  expect(after).not.toContain("[exited 0]");
  expect(blobs()).toEqual([]);
}, 40_000);

test.skipIf(!hasTmux)("answering yes sets the model up", async () => {
  const { blobs } = start();
  await term!.waitFor("Proceed: download", 20_000, "screen");
  term!.send("Enter"); // the default is yes
  const after = await term!.waitFor("[exited 0]", 60_000, "history");
  expect(after).toContain("is ready");
  expect(blobs().length).toBe(4);
}, 90_000);
