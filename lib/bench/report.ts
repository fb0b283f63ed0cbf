// `benchmark report`: the results history as a table on stdout and an SVG chart of a figure (decode tok/s) over
// commits, one line per machine and model.
//   bun scripts/benchmark.ts report [--figure decode_tok_s] [--target fullbench] [--out chart.svg] [--all]
import { defineCommand } from "citty";
import { resolve } from "pathe";
import { globalArgs } from "../cli.ts";
import { loadFlashchatConfig } from "../config/index.ts";
import { UserError } from "../errors.ts";
import { renderTable } from "../format.ts";
import { writeFileAtomic } from "../fs.ts";
import { logger } from "../log.ts";
import { type BenchRecord, historyPath, loadHistory } from "./history.ts";
import { formatNumber } from "./stats.ts";

/** "AMD EPYC/2" — the short machine label used in tables and legends. */
export const machineLabel = (r: BenchRecord) => `${r.machine.cpu}/${r.machine.cores}c`;

const pct = (x: number, ceil: number | null | undefined) => (ceil ? `${Math.round((100 * x) / ceil)}%` : "");

/** The history as an aligned text table, oldest first. */
export function renderHistoryTable(records: readonly BenchRecord[]): string {
  const head = ["date", "commit", "machine", "model", "quant", "target", "figure", "median", "min–max", "runs", "%mem", "%disk", "%kernel"];
  const rows = records.map((r) => [
    r.date.replace("T", " ").slice(0, 16),
    r.commit,
    machineLabel(r),
    r.model,
    r.quantization,
    r.target,
    r.unit ? `${r.figure} (${r.unit})` : r.figure,
    formatNumber(r.stats.median),
    `${formatNumber(r.stats.min)}–${formatNumber(r.stats.max)}`,
    String(r.stats.n),
    pct(r.stats.median, r.ceilings?.memory),
    pct(r.stats.median, r.ceilings?.disk),
    pct(r.stats.median, r.ceilings?.kernel),
  ]);
  return renderBenchTable(head, rows);
}

/** A benchmark table: a rule under the head, numbers right-aligned. */
export const renderBenchTable = (head: string[], rows: string[][]) => renderTable(rows, { head, rule: true, numbers: true });

export interface ChartPoint {
  commit: string;
  date: string;
  median: number;
  min: number;
  max: number;
}

export interface ChartSeries {
  label: string;
  points: ChartPoint[];
}

/**
 * Series of one figure of one target: one per machine + model (+ quantization), the latest run per commit.
 * Commits are ordered by when they were first benchmarked.
 */
export function resolveChartSeries(records: readonly BenchRecord[], figure: string, target?: string): { commits: string[]; series: ChartSeries[] } {
  const picked = records.filter((r) => r.figure === figure && (!target || r.target === target));
  const commits: string[] = [];
  const byKey = new Map<string, Map<string, ChartPoint>>();
  for (const r of [...picked].sort((a, b) => a.date.localeCompare(b.date))) {
    if (!commits.includes(r.commit)) commits.push(r.commit);
    const key = `${machineLabel(r)} · ${r.model}${r.quantization ? ` ${r.quantization}` : ""}${target ? "" : ` · ${r.target}`}`;
    if (!byKey.has(key)) byKey.set(key, new Map());
    byKey.get(key)!.set(r.commit, { commit: r.commit, date: r.date, median: r.stats.median, min: r.stats.min, max: r.stats.max });
  }
  const series = [...byKey].map(([label, pts]) => ({ label, points: commits.flatMap((c) => (pts.has(c) ? [pts.get(c)!] : [])) }));
  return { commits, series };
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** A 1-2-5 step giving about `n` ticks from 0 to max. */
function niceStep(max: number, n = 5): number {
  const raw = max / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
}

/** The chart as a standalone SVG document: y = figure (from 0), x = commits, a line and min–max bars per series. */
export function renderChartSvg(data: { commits: string[]; series: ChartSeries[] }, opts: { title: string; yLabel: string }): string {
  const W = 960;
  const legendH = 18 * data.series.length + 10;
  const H = 420 + legendH;
  const m = { left: 70, right: 40, top: 50, bottom: 115 + legendH };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const ymaxRaw = Math.max(0, ...data.series.flatMap((s) => s.points.map((p) => p.max)));
  const step = niceStep(ymaxRaw > 0 ? ymaxRaw : 1);
  const ymax = Math.ceil((ymaxRaw > 0 ? ymaxRaw : 1) / step) * step;
  const nx = data.commits.length;
  const x = (c: string) => m.left + (nx <= 1 ? pw / 2 : (pw * data.commits.indexOf(c)) / (nx - 1));
  const y = (v: number) => m.top + ph - (ph * v) / ymax;
  const f = (v: number) => v.toFixed(1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold">${esc(opts.title)}</text>`);
  // grid and y axis
  for (let v = 0; v <= ymax + step / 2; v += step) {
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${f(y(v))}" y2="${f(y(v))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.left - 8}" y="${f(y(v) + 4)}" text-anchor="end" fill="#444">${Number(v.toPrecision(6))}</text>`);
  }
  out.push(`<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#222">${esc(opts.yLabel)}</text>`);
  out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + ph}" stroke="#888"/>`);
  out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${m.top + ph}" y2="${m.top + ph}" stroke="#888"/>`);
  // x axis: a tick per commit, a label on at most ~30 of them (the newest always)
  const every = Math.ceil(nx / 30);
  data.commits.forEach((c, i) => {
    const cx = f(x(c));
    out.push(`<line x1="${cx}" x2="${cx}" y1="${m.top + ph}" y2="${m.top + ph + 5}" stroke="#888"/>`);
    if ((nx - 1 - i) % every === 0) {
      out.push(`<text transform="translate(${cx} ${m.top + ph + 14}) rotate(35)" fill="#444" font-family="ui-monospace, monospace" font-size="11">${esc(c.slice(0, 16))}</text>`);
    }
  });
  out.push(`<text x="${m.left + pw / 2}" y="${m.top + ph + 104}" text-anchor="middle" fill="#222">commit (in the order first benchmarked)</text>`);
  // series
  data.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    out.push(`<g stroke="${color}" fill="${color}">`);
    out.push(`<title>${esc(s.label)}</title>`);
    if (s.points.length > 1) {
      out.push(`<polyline fill="none" stroke-width="2" points="${s.points.map((p) => `${f(x(p.commit))},${f(y(p.median))}`).join(" ")}"/>`);
    }
    for (const p of s.points) {
      const px = f(x(p.commit));
      if (p.max > p.min) out.push(`<line x1="${px}" x2="${px}" y1="${f(y(p.min))}" y2="${f(y(p.max))}" stroke-width="1" opacity="0.6"/>`);
      out.push(`<circle cx="${px}" cy="${f(y(p.median))}" r="3.5"><title>${esc(`${s.label}\n${p.commit} ${p.date}\nmedian ${formatNumber(p.median)} (${formatNumber(p.min)}–${formatNumber(p.max)})`)}</title></circle>`);
    }
    out.push("</g>");
    const ly = H - legendH + 18 * i + 4;
    out.push(`<line x1="${m.left}" x2="${m.left + 24}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="3"/>`);
    out.push(`<text x="${m.left + 32}" y="${ly + 4}" fill="#222">${esc(s.label)}</text>`);
  });
  if (!data.series.length) out.push(`<text x="${W / 2}" y="${m.top + ph / 2}" text-anchor="middle" fill="#888">no results yet</text>`);
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

const command = defineCommand({
  meta: { name: "report", description: "Results history as a table and an SVG chart of tok/s over commits" },
  args: {
    ...globalArgs,
    figure: { type: "string", description: "Figure to chart (default decode_tok_s)", valueHint: "NAME" },
    target: { type: "string", description: "Only this target's figure in the chart (default: fullbench if it has the figure)", valueHint: "TARGET" },
    out: { type: "string", description: "Where to write the SVG chart (default <data dir>/bench/report.svg)", valueHint: "FILE" },
    all: { type: "boolean", description: "Print every row of the history (default: the last 40)" },
  },
  async run({ args }) {
    const config = await loadFlashchatConfig({ configFile: args.config });
    const path = historyPath(config);
    const records = loadHistory(path);
    if (!records.length) throw new UserError(`no benchmark results yet (${path} is empty or missing)`, "run: make bench (or flashchat benchmark standard)");
    const shown = args.all ? records : records.slice(-40);
    if (shown.length < records.length) console.log(`(last ${shown.length} of ${records.length} rows; --all for every row)`);
    console.log(renderHistoryTable(shown));
    const figure = args.figure || "decode_tok_s";
    const withFigure = records.filter((r) => r.figure === figure);
    if (!withFigure.length) throw new UserError(`no "${figure}" figures in the history`, `figures recorded: ${[...new Set(records.map((r) => r.figure))].join(", ")}`);
    const target = args.target || (withFigure.some((r) => r.target === "fullbench") ? "fullbench" : undefined);
    const data = resolveChartSeries(records, figure, target);
    if (target && !data.series.length) throw new UserError(`target "${target}" has no "${figure}" figures in the history`);
    const unit = withFigure[0]!.unit;
    const svg = renderChartSvg(data, { title: `${figure}${target ? ` — ${target}` : ""}, median with min–max`, yLabel: unit ? `${figure} (${unit})` : figure });
    const out = args.out ? resolve(args.out) : resolve(config.paths.dataDir, "bench", "report.svg");
    writeFileAtomic(out, svg);
    logger.success(`chart written to ${out} (${data.series.length} line${data.series.length === 1 ? "" : "s"}, ${data.commits.length} commit${data.commits.length === 1 ? "" : "s"})`);
  },
});

export default command;
