// The TUI's status panel: what `flashchat status` reports (model, artifacts, engine, server, settings) plus what
// the running server says live (/health: engine backend, context, KV type, queue) and its memory, refreshed
// while the view is open, and the tokens of this TUI run.
import { readFileSync } from "node:fs";
import type { KeyEvent } from "@opentui/core";
import { loadHealth } from "../client/api.ts";
import { formatBytes, renderTable } from "../format.ts";
import { ListPane } from "./list-pane.ts";
import type { AppServices, View } from "./ui.ts";

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

/** The live part of the panel: one [label, value] per line. */
export function renderLiveStatus(health: Record<string, unknown> | undefined, tokens: AppServices["tokens"]): [string, string][] {
  const rows: [string, string][] = [];
  if (health) {
    const engine = health.engine as { pid?: number; backend?: string; context?: number; kv_type?: string; kv_bytes_per_token?: number } | undefined;
    const queue = health.queue as { busy?: boolean; waiting?: number } | undefined;
    rows.push(["server state", `${health.status}${typeof health.pid === "number" ? ` (pid ${health.pid})` : ""}`]);
    if (typeof health.model === "string") rows.push(["loaded model", health.model]);
    if (engine) {
      rows.push(["backend", engine.backend ?? "?"]);
      rows.push(["context", `${engine.context ?? "?"} tokens · KV ${engine.kv_type ?? "?"}${engine.kv_bytes_per_token ? ` (${formatBytes(engine.kv_bytes_per_token)}/token)` : ""}`]);
      const rss = engine.pid ? loadResidentBytes(engine.pid) : undefined;
      if (rss !== undefined) rows.push(["engine memory", `${formatBytes(rss)} resident (dense weights mapped + KV + buffers)`]);
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
      const health = status.server.running ? await loadHealth(status.server.url, 1500) : undefined;
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
