// A scrolling list of one-line rows drawn as text (the log tail, the sessions, the settings): a selection
// that keys move, a window that follows it, and a header line.
import { BoxRenderable, type KeyEvent, type TextChunk, TextRenderable } from "@opentui/core";
import { type AppServices, clampIndex, cut, moveSelection, paint, paintSelected, type Role, styled } from "./ui.ts";

export interface Row {
  text: string;
  role?: Role;
}

export class ListPane {
  readonly root: BoxRenderable;
  private readonly headerText: TextRenderable;
  private readonly body: TextRenderable;
  rows: Row[] = [];
  header = "";
  index = 0;
  private top = 0;
  /** Follow the end (the log): new rows keep the last one in view. */
  follow = false;

  constructor(
    private readonly app: AppServices,
    id: string,
    /** false: rows are not selectable, keys scroll (the log). */
    private readonly selectable = true,
  ) {
    const r = app.renderer;
    this.root = new BoxRenderable(r, { id, flexDirection: "column", flexGrow: 1 });
    this.headerText = new TextRenderable(r, { id: `${id}-header`, height: 1, content: "" });
    this.body = new TextRenderable(r, { id: `${id}-body`, flexGrow: 1, content: "", wrapMode: "none" });
    this.root.add(this.headerText);
    this.root.add(this.body);
    // the wheel scrolls (three rows a notch); a click selects the row under it
    this.body.onMouseScroll = (e) => {
      const d = e.scroll?.direction;
      if (d === "up" || d === "down") this.scroll(d === "up" ? -3 : 3);
    };
    this.body.onMouseDown = (e) => {
      if (!this.selectable) return;
      const row = this.top + (e.y - this.body.screenY);
      if (row >= 0 && row < this.rows.length) this.moveTo(row);
    };
  }

  /** Called after the mouse moved the selection or the window (a view may say what is selected). */
  onMove?: () => void;

  private scroll(delta: number): void {
    if (this.selectable) return this.moveTo(clampIndex(this.index + delta, this.rows.length));
    this.index = Math.max(0, Math.min(this.lastTop, this.index + delta));
    this.follow = this.index >= this.lastTop;
    this.draw();
    this.onMove?.();
  }

  private moveTo(row: number): void {
    this.index = row;
    this.draw();
    this.onMove?.();
  }

  /** Rows the body can show: the terminal less the app's frame (4 lines) and our header. */
  get height(): number {
    return Math.max(1, this.app.renderer.height - 5);
  }

  setRows(rows: Row[]): void {
    this.rows = rows;
    // selectable: index is the selected row; otherwise (the log) it is the top row shown
    if (this.selectable) this.index = clampIndex(this.index, rows.length);
    else this.index = this.follow ? this.lastTop : Math.min(this.index, this.lastTop);
    this.draw();
  }

  private get lastTop(): number {
    return Math.max(0, this.rows.length - this.height);
  }

  get selected(): Row | undefined {
    return this.rows[this.index];
  }

  key(k: KeyEvent): boolean {
    const n = this.selectable ? this.rows.length : this.lastTop + 1;
    const next = moveSelection(k, this.index, n, Math.max(1, this.height - 1));
    if (next === undefined) return false;
    this.index = next;
    if (!this.selectable) this.follow = next >= this.lastTop;
    this.draw();
    return true;
  }

  draw(): void {
    const width = this.app.renderer.width;
    const theme = this.app.theme;
    const h = this.height;
    this.headerText.content = styled(paint(theme, "accent", cut(this.header, width), { bold: true }));
    if (!this.selectable) this.top = this.follow ? this.lastTop : Math.min(this.index, this.lastTop);
    else {
      if (this.index < this.top) this.top = this.index;
      if (this.index >= this.top + h) this.top = this.index - h + 1;
      this.top = Math.max(0, Math.min(this.top, this.lastTop));
    }
    const chunks: TextChunk[] = [];
    const shown = this.rows.slice(this.top, this.top + h);
    shown.forEach((row, i) => {
      const at = this.top + i;
      const line = cut(row.text, width - 2);
      if (this.selectable && at === this.index) chunks.push(paintSelected(theme, `> ${line}`.padEnd(Math.min(width, line.length + 2))));
      else chunks.push(paint(theme, row.role ?? "text", `${this.selectable ? "  " : ""}${line}`));
      if (i < shown.length - 1) chunks.push(paint(theme, "text", "\n"));
    });
    if (chunks.length === 0) chunks.push(paint(theme, "dim", this.selectable ? "  (nothing here)" : "(empty)"));
    this.body.content = styled(...chunks);
  }
}

/** A view that is one list with a search (sessions, settings): the pane, the query, redraws on search and resize. */
export abstract class ListView {
  protected readonly pane: ListPane;
  protected query = "";

  constructor(
    protected readonly app: AppServices,
    id: string,
  ) {
    this.pane = new ListPane(app, id);
  }

  get root(): BoxRenderable {
    return this.pane.root;
  }

  hidden(): void {}

  refresh(): void {
    this.draw();
  }

  /** `/` typed TEXT: the rows that match, the selection back on the first. */
  search(query: string): void {
    this.query = query;
    this.pane.index = 0;
    this.draw();
  }

  protected abstract draw(): void;
}
