import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { appendHistory, HISTORY_COLUMNS, historyPath, loadHistory, recordToRow, rowToRecord } from "../../lib/bench/history.ts";
import { resolvePaths } from "../../lib/config/index.ts";
import { recorded } from "./_records.ts";

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));
const setup = () => (dir = mkdtempSync(join(tmpdir(), "flashchat-history-")));

test("history lives under the data dir, never in the repo", () => {
  setup();
  const paths = resolvePaths({ HOME: dir, XDG_DATA_HOME: join(dir, "data") }, dir);
  expect(historyPath({ paths })).toBe(join(dir, "data", "flashchat", "bench", "history.tsv"));
});

test("append creates the header once, then one line per figure; load gives the records back", () => {
  setup();
  const path = join(dir, "bench", "history.tsv");
  const recs = recorded();
  appendHistory(path, recs.slice(0, 2));
  appendHistory(path, recs.slice(2));
  const lines = readFileSync(path, "utf8").replace(/\n$/, "").split("\n");
  expect(lines[0]).toBe(HISTORY_COLUMNS.join("\t"));
  expect(lines.length).toBe(1 + recs.length);
  expect(lines.filter((l) => l.startsWith("date\t")).length).toBe(1);
  for (const l of lines) expect(l.split("\t").length).toBe(HISTORY_COLUMNS.length);
  const back = loadHistory(path);
  expect(back.map((r) => [r.commit, r.model, r.target, r.figure, r.stats.median, r.machine.cpu])).toEqual(recs.map((r) => [r.commit, r.model, r.target, r.figure, r.stats.median, r.machine.cpu]));
  expect(back[0]!.ceilings).toEqual({ memory: 10.2, disk: 3.3, kernel: 2.6 });
  expect(back[2]!.ceilings).toEqual({ memory: undefined, disk: null, kernel: null });
});

test("tabs and newlines in names cannot break a row", () => {
  const rec = { ...recorded()[0]!, model: "bad\tname\nhere" };
  const row = recordToRow(rec);
  expect(row.model).toBe("bad name here");
  expect(rowToRecord(row)!.model).toBe("bad name here");
});

test("a torn or malformed line is skipped, the rest still loads", () => {
  setup();
  const path = join(dir, "history.tsv");
  appendHistory(path, recorded().slice(0, 2));
  appendFileSync(path, "2026-11-23T00:00:00Z\tdeadbeef\tAMD\n"); // a run that died mid-line
  appendHistory(path, recorded().slice(3, 4));
  expect(loadHistory(path).map((r) => r.commit)).toEqual(["aaaa111", "aaaa111", "bbbb222"]);
});

test("an older file with its columns in another order is read and appended by its own header", () => {
  setup();
  const path = join(dir, "history.tsv");
  const cols = [...HISTORY_COLUMNS].reverse();
  writeFileSync(path, `${cols.join("\t")}\n`);
  appendHistory(path, recorded().slice(0, 1));
  const [head, line] = readFileSync(path, "utf8").replace(/\n$/, "").split("\n");
  expect(head).toBe(cols.join("\t"));
  expect(line!.split("\t")[cols.indexOf("commit")]).toBe("aaaa111");
  expect(loadHistory(path)[0]!.stats).toEqual({ median: 2.1, min: 1.9, max: 2.3, n: 5 });
});

test("a file that is not a history is refused rather than appended to", () => {
  setup();
  const path = join(dir, "history.tsv");
  writeFileSync(path, "something else\n");
  expect(() => appendHistory(path, recorded().slice(0, 1))).toThrow(/not a benchmark history/);
  expect(readFileSync(path, "utf8")).toBe("something else\n");
});

test("concurrent appenders interleave whole rows and write one header", async () => {
  setup();
  const path = join(dir, "history.tsv");
  const script = join(dir, "append.ts");
  writeFileSync(
    script,
    `import { appendHistory } from ${JSON.stringify(join(import.meta.dir, "../../lib/bench/history.ts"))};
import { recorded } from ${JSON.stringify(join(import.meta.dir, "_records.ts"))};
for (let i = 0; i < 20; i++) appendHistory(${JSON.stringify(path)}, recorded());`,
  );
  const procs = [0, 1, 2].map(() => Bun.spawn([process.execPath, script], { stderr: "inherit" }));
  expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0, 0]);
  const lines = readFileSync(path, "utf8").replace(/\n$/, "").split("\n");
  expect(lines.filter((l) => l.startsWith("date\t")).length).toBe(1);
  expect(lines.length).toBe(1 + 3 * 20 * recorded().length);
  expect(loadHistory(path).length).toBe(3 * 20 * recorded().length);
});
