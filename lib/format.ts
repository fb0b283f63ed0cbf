// Text for people: byte counts, durations and plain-text tables (the one home of each).

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

/** 1234567 -> "1.2 MB" (decimal units, as disks and the Hub count). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "?";
  let i = 0;
  let v = Math.abs(n);
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  const s = i === 0 ? String(Math.round(v)) : v >= 100 ? v.toFixed(0) : v.toFixed(1);
  return `${n < 0 ? "-" : ""}${s} ${UNITS[i]}`;
}

/** Seconds -> "42s", "3m05s", "2h10m"; "--" when unknown (an ETA with no rate yet). */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "--";
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Time something took: "3.4s" under ten seconds, else as formatDuration. */
export const formatElapsed = (sec: number) => (sec < 10 ? `${sec.toFixed(1)}s` : formatDuration(sec));

/**
 * Rows of cells as aligned columns, two spaces apart, trailing blanks trimmed. `head` comes first (`rule`: a line
 * of dashes under it); `numbers` right-aligns columns whose every cell is a number (or blank). `style(line, row)`
 * may wrap a whole line (colour) after padding, so colour codes never upset the widths; row -1 is the head.
 */
export function renderTable(
  rows: readonly (readonly string[])[],
  opts: { head?: readonly string[]; rule?: boolean; numbers?: boolean; style?: (line: string, row: number) => string } = {},
): string {
  const all = opts.head ? [opts.head, ...rows] : rows;
  const n = Math.max(0, ...all.map((r) => r.length));
  const widths = Array.from({ length: n }, (_, i) => Math.max(0, ...all.map((r) => (r[i] ?? "").length)));
  const right = widths.map((_, i) => Boolean(opts.numbers) && rows.length > 0 && rows.every((r) => /^[-+]?[\d.,–%]*$/.test(r[i] ?? "")));
  const line = (r: readonly string[]) =>
    r
      .map((v, i) => (right[i] ? v.padStart(widths[i]!) : i === r.length - 1 ? v : v.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  const style = opts.style ?? ((l: string) => l);
  const head = opts.head ? [style(line(opts.head), -1), ...(opts.rule ? [line(widths.map((w) => "-".repeat(w)))] : [])] : [];
  return [...head, ...rows.map((r, i) => style(line(r), i))].join("\n");
}
