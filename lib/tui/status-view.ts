// The TUI's status panel: what `flashchat status` reports (model, artifacts, engine, server, settings) plus what
// the running server says live (/health?stats=1: backend and kernels, context, KV type, experts read per token,
// page-cache hits, queue) and its memory, refreshed
// while the view is open, and the tokens of this TUI run.
import { readFileSync } from "node:fs";
import type { KeyEvent } from "@opentui/core";
import { loadHealth } from "../client/api.ts";
import { formatBytes, renderTable } from "../format.ts";
import { ListPane } from "./list-pane.ts";
import { type AppServices, backendLabel, type View } from "./ui.ts";

/** Resident memory of a process in bytes (Linux /proc), or undefined. */
export function loadResidentBytes(pid: number): number | undefined {
  if (process.platform !== "linux") return undefined; // macOS has no /proc (the panel then shows no memory line)
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The engine's part of /health?stats=1 (lib/server/routes/health.ts; the stats are native/PROTOCOL.md's `stats`). */
export interface EngineHealth {
  pid?: number;
  backend?: string;
  kernels?: string;
  threads?: number;
  context?: number;
  kv_type?: string;
  kv_bytes_per_token?: number;
  dense_bytes?: number;
  expert_io?: string;
  stats?: { prefill_tokens?: number; decode_passes?: number; expert_reads?: number; expert_bytes?: number; expert_bytes_cached?: number };
}

const percent = (part: number, whole: number) => `${((100 * part) / whole).toFixed(part === whole ? 0 : 1)}%`;

/** The live part of the panel: one [label, value] per line. */
export function renderLiveStatus(health: Record<string, unknown> | undefined, tokens: AppServices["tokens"]): [string, string][] {
  const rows: [string, string][] = [];
  if (health) {
    const engine = health.engine as EngineHealth | undefined;
    const queue = health.queue as { busy?: boolean; waiting?: number } | undefined;
    rows.push(["server state", `${health.status}${typeof health.pid === "number" ? ` (pid ${health.pid})` : ""}`]);
    if (typeof health.model === "string") rows.push(["loaded model", health.model]);
    if (engine) {
      rows.push(["backend", `${backendLabel(engine) ?? "?"}${engine.threads ? ` · ${engine.threads} threads` : ""}`]);
      rows.push(["context", `${engine.context ?? "?"} tokens · KV ${engine.kv_type ?? "?"}${engine.kv_bytes_per_token ? ` (${formatBytes(engine.kv_bytes_per_token)}/token)` : ""}`]);
      const rss = engine.pid ? loadResidentBytes(engine.pid) : undefined;
      if (rss !== undefined) rows.push(["engine memory", `${formatBytes(rss)} resident${engine.dense_bytes ? ` · dense weights ${formatBytes(engine.dense_bytes)} (mapped)` : ""}`]);
      const st = engine.stats;
      if (st) {
        // an engine that does not count them (an older build) reports neither: no row rather than a zero
        const evaluated = (st.prefill_tokens ?? 0) + (st.decode_passes ?? 0);
        const reads = st.expert_reads;
        if (reads !== undefined) rows.push(["experts read", evaluated > 0 ? `${(reads / evaluated).toFixed(1)} per token (${reads} over ${evaluated} tokens, ${formatBytes(st.expert_bytes ?? 0)}${engine.expert_io ? `, ${engine.expert_io}` : ""})` : "none yet (no tokens evaluated)"]);
        if (st.expert_bytes && st.expert_bytes_cached !== undefined) rows.push(["page cache", `${percent(st.expert_bytes_cached, st.expert_bytes)} of expert bytes were in the page cache when read`]);
      }
    }
    const serverRss = typeof health.pid === "number" ? loadResidentBytes(health.pid) : undefined;
    if (serverRss !== undefined) rows.push(["server memory", `${formatBytes(serverRss)} resident`]);
    if (queue) rows.push(["queue", `${queue.busy ? "busy" : "idle"}, ${queue.waiting ?? 0} waiting`]);
  } else rows.push(["server state", "not running (a chat message starts it)"]);
  rows.push(["this session", `${tokens.completion} tokens generated, ${tokens.prompt} prompt tokens${tokens.contextSize ? `, context ${tokens.contextUsed ?? 0}/${tokens.contextSize}` : ""}`]);
  return rows;
}

export class StatusView implements View {
  readonly name = "status" as const;
  readonly help = ["j k ↑ ↓ g G  scroll    r  refresh now (it refreshes every 2 s)"];
  private readonly pane: ListPane;
  private timer?: ReturnType<typeof setInterval>;
  private loading = false;

  constructor(private readonly app: AppServices) {
    this.pane = new ListPane(app, "status", false);
  }

  get root() {
    return this.pane.root;
  }

  shown(): void {
    this.pane.header = "status · loading…";
    this.pane.draw();
    void this.load();
    this.timer = setInterval(() => void this.load(), 2000);
  }

  hidden(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  refresh(): void {
    this.pane.draw();
  }

  private async load(): Promise<void> {
    if (this.loading) return;
    this.loading = true;
    try {
      // imported when the panel first opens: lib/status.ts brings the model and setup code, which the TUI's start does not need
      const { loadStatus, renderStatus } = await import("../status.ts");
      const status = await loadStatus(this.app.config);
      const health = status.server.running ? await loadHealth(status.server.url, 2500, { stats: true }) : undefined;
      const lines = [...renderTable(renderLiveStatus(health, this.app.tokens)).split("\n"), "", ...renderStatus(status).split("\n")];
      this.pane.header = `status · ${new Date().toLocaleTimeString()}`;
      this.pane.setRows(lines.map((text) => ({ text })));
    } finally {
      this.loading = false;
    }
  }

  key(k: KeyEvent): boolean {
    if (k.sequence === "r") return void this.load(), true;
    return this.pane.key(k);
  }
}
