import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { appendHistory } from "../../lib/bench/history.ts";
import { renderChartSvg, renderHistoryTable, resolveChartSeries } from "../../lib/bench/report.ts";
import { makeTempHome, repoRoot, runCli, type TempHome } from "../helpers/cli.ts";
import { recorded } from "./_records.ts";

test("the table has one row per record with medians, ranges and ceiling percentages", () => {
  const lines = renderHistoryTable(recorded()).split("\n");
  expect(lines.length).toBe(2 + recorded().length);
  expect(lines[0]).toMatch(/^date\s+commit\s+machine\s+model\s+quant\s+target\s+figure\s+median\s+min–max\s+runs\s+%mem\s+%disk\s+%kernel$/);
  // 2.1 tok/s against ceilings 10.2 / 3.3 / 2.6 tok/s
  expect(lines[2]).toContain("2026-11-20 10:00");
  expect(lines[2]!.split(/\s{2,}/).slice(-7)).toEqual(["decode_tok_s (tok/s)", "2.10", "1.90–2.30", "5", "21%", "64%", "81%"]);
  // no ceilings for a latency figure
  expect(lines[4]!.trimEnd().endsWith("790–900     5")).toBe(true);
});

test("chart series: one per machine and model, commits in the order first benchmarked", () => {
  const data = resolveChartSeries(recorded(), "decode_tok_s", "fullbench");
  expect(data.commits).toEqual(["aaaa111", "bbbb222", "cccc333"]);
  expect(data.series.map((s) => [s.label, s.points.map((p) => [p.commit, p.median])])).toEqual([
    ["AMD EPYC/2c · qwen3.5-397b-sliced 4bit", [["aaaa111", 2.1], ["bbbb222", 2.4]]],
    ["AMD EPYC/2c · qwen3.6-35b-sliced 4bit", [["aaaa111", 9.5], ["bbbb222", 10.1]]],
    ["Apple M3 Max/16c · qwen3.5-397b-sliced 4bit", [["cccc333", 4.4]]],
  ]);
  // a re-run of the same commit replaces the point rather than adding one
  const again = { ...recorded()[0]!, date: "2026-11-20T11:00:00.000Z", stats: { median: 2.2, min: 2, max: 2.3, n: 5 } };
  const d2 = resolveChartSeries([...recorded(), again], "decode_tok_s", "fullbench");
  expect(d2.series[0]!.points.map((p) => p.median)).toEqual([2.2, 2.4]);
});

test("the SVG is a well-formed document with a polyline per multi-point series, a dot per point and a legend", () => {
  const data = resolveChartSeries(recorded(), "decode_tok_s", "fullbench");
  const svg = renderChartSvg(data, { title: "decode <tok/s>", yLabel: "tok/s" });
  expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
  expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
  expect(svg.match(/<polyline /g)?.length).toBe(2);
  expect(svg.match(/<circle /g)?.length).toBe(5);
  expect(svg).toContain("decode &lt;tok/s&gt;");
  for (const s of data.series) expect(svg).toContain(s.label);
  for (const c of data.commits) expect(svg).toContain(`>${c}</text>`);
  // every opened <g> is closed
  expect(svg.match(/<g /g)?.length).toBe(svg.match(/<\/g>/g)?.length);
  // the y axis starts at 0 and ends on the round number above the highest max (10.3)
  expect(svg.match(/text-anchor="end" fill="#444">[^<]*</g)!.map((x) => x.split(">")[1]!.slice(0, -1))).toEqual(["0", "5", "10", "15"]);
  expect(renderChartSvg({ commits: [], series: [] }, { title: "t", yLabel: "y" })).toContain("no results yet");
});

let t: TempHome | undefined;
afterEach(() => t?.[Symbol.dispose]());

test("`benchmark report` prints the table and writes the chart; an empty history is a one-line user error", async () => {
  t = makeTempHome();
  const script = join(repoRoot, "scripts", "benchmark.ts");
  const empty = await runCli(["report"], { env: t.env, script });
  expect(empty.code).toBe(1);
  expect(empty.stderr).toContain("no benchmark results yet");
  expect(empty.stderr).not.toContain(" at ");
  appendHistory(join(t.env.XDG_DATA_HOME!, "flashchat", "bench", "history.tsv"), recorded());
  const out = join(t.dir, "chart.svg");
  const r = await runCli(["report", "--out", out], { env: t.env, script });
  expect(r.stderr).toContain("chart written to");
  expect(r.code).toBe(0);
  expect(r.stdout.split("\n").filter((l) => l.includes("decode_tok_s")).length).toBe(5);
  expect(readFileSync(out, "utf8")).toContain("<polyline");
  const dflt = await runCli(["report", "--figure", "ttft_ms"], { env: t.env, script });
  expect(dflt.code).toBe(0);
  expect(existsSync(join(t.env.XDG_DATA_HOME!, "flashchat", "bench", "report.svg"))).toBe(true);
  const bad = await runCli(["report", "--figure", "nope"], { env: t.env, script });
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain('no "nope" figures');
});

test("with many commits only about 30 are labelled, the newest among them", () => {
  const base = recorded()[0]!;
  const many = Array.from({ length: 90 }, (_, i) => ({ ...base, commit: `c${String(i).padStart(3, "0")}`, date: `2026-11-2${Math.floor(i / 30)}T${String(i % 24).padStart(2, "0")}:00:00.000Z` }));
  const data = resolveChartSeries(many, "decode_tok_s", "fullbench");
  expect(data.commits.length).toBe(90);
  const svg = renderChartSvg(data, { title: "t", yLabel: "y" });
  const labels = [...svg.matchAll(/font-size="11">([^<]+)</g)].map((m) => m[1]);
  expect(labels.length).toBe(30);
  expect(labels.at(-1)).toBe(data.commits.at(-1));
  expect(svg.match(/<circle /g)?.length).toBe(90);
});
