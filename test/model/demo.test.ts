import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { DEMO_GENERATOR_VERSION, generateDemoCheckpoint, readDemoStamp } from "../../lib/model/demo.ts";
import { checkLocalCheckpoint } from "../../lib/model/hub.ts";

const tmp = mkdtempSync(join(tmpdir(), "flashchat-demo-gen-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test("the demo checkpoint is deterministic, complete, stamped, with the real Qwen tokenizer, and replaces leftovers", async () => {
  const a = join(tmp, "a", "demo");
  const b = join(tmp, "b", "demo");
  mkdirSync(join(tmp, "b", ".demo.tmp-99999"), { recursive: true }); // an interrupted earlier run
  await generateDemoCheckpoint(a);
  await generateDemoCheckpoint(b);
  expect(readdirSync(join(tmp, "b"))).toEqual(["demo"]);
  expect(readDemoStamp(a)).toBe(DEMO_GENERATOR_VERSION);
  expect(checkLocalCheckpoint(a)).toMatchObject({ ok: true, hasTokenizer: true });
  const files = readdirSync(a).sort();
  expect(files).toEqual(readdirSync(b).sort());
  for (const f of files) expect(Bun.hash(readFileSync(join(a, f)))).toBe(Bun.hash(readFileSync(join(b, f))));
  const tok = JSON.parse(readFileSync(join(a, "tokenizer.json"), "utf8"));
  expect(tok.model.type).toBe("BPE");
  expect(existsSync(join(a, "tokenizer_config.json"))).toBe(true);
  expect(JSON.parse(readFileSync(join(a, "tokenizer_config.json"), "utf8")).chat_template).toContain("<|im_start|>");
}, 60_000);
