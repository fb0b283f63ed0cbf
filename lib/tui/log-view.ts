// The TUI's server log: the tail of SERVER_LOG_PATH, followed live while the view is open (read again when the
// file grows), scrolled with the list keys, filtered with /.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import type { KeyEvent } from "@opentui/core";
import { ListPane } from "./list-pane.ts";
import type { AppServices, View } from "./ui.ts";

/** The last `maxBytes` of a file as lines (a cut first line dropped); [] when it does not exist. */
export function readLogTail(path: string, maxBytes = 256 * 1024): { lines: string[]; sizeBytes: number } {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return { lines: [], sizeBytes: -1 };
  }
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(0, size - maxBytes);
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    const lines = buf.toString("utf8").split("\n");
    if (start > 0) lines.shift();
    if (lines.at(-1) === "") lines.pop();
    return { lines, sizeBytes: size };
  } finally {
    closeSync(fd);
  }
}

export class LogView implements View {
  readonly name = "log" as const;
  readonly help = ["j k ↑ ↓ PgUp PgDn  scroll    g G  top / bottom (G follows new lines)", "/TEXT  only the lines with TEXT"];
  private readonly pane: ListPane;
  private timer?: ReturnType<typeof setInterval>;
  private sizeBytes = -2;
  private lines: string[] = [];
  private query = "";

  constructor(private readonly app: AppServices) {
    this.pane = new ListPane(app, "log", false);
    this.pane.follow = true;
    this.pane.onMove = () => this.draw();
  }

  get root() {
    return this.pane.root;
  }

  shown(): void {
    this.load(true);
    this.timer = setInterval(() => this.load(false), 500);
  }

  hidden(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private load(force: boolean): void {
    const path = this.app.config.serverLogPath;
    const tail = readLogTail(path);
    if (!force && tail.sizeBytes === this.sizeBytes) return;
    this.sizeBytes = tail.sizeBytes;
    this.lines = tail.lines;
    this.draw(path);
  }

  private draw(path = this.app.config.serverLogPath): void {
    const shown = this.query ? this.lines.filter((l) => l.toLowerCase().includes(this.query.toLowerCase())) : this.lines;
    this.pane.header = `server log ${path}${this.sizeBytes < 0 ? " (no log yet: the server has not run)" : ""}${this.query ? ` · lines with "${this.query}": ${shown.length}` : ""}${this.pane.follow ? " · following" : ""}`;
    this.pane.setRows(shown.map((text) => ({ text, role: / (4\d\d|5\d\d) /.test(text) ? "error" : "text" })));
  }

  key(k: KeyEvent): boolean {
    const handled = this.pane.key(k);
    if (handled) this.draw();
    return handled;
  }

  search(query: string): void {
    this.query = query;
    this.pane.follow = true;
    this.draw();
  }

  refresh(): void {
    this.draw();
  }
}
