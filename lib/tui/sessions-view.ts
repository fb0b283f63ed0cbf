// The TUI's session history: every saved chat (newest first, numbered as `flashchat sessions` numbers them),
// searched through their text with /, resumed with Enter, deleted with d (after y), renamed with r.
import { existsSync, linkSync, readFileSync, unlinkSync } from "node:fs";
import { join } from "pathe";
import type { KeyEvent } from "@opentui/core";
import { deleteSession, findSession, listSessions, resolveSessionId, SESSION_EXT, type SessionDirs, type SessionInfo } from "../chat/sessions.ts";
import { UserError } from "../errors.ts";
import { ListView } from "./list-pane.ts";
import type { AppServices, View } from "./ui.ts";

/**
 * Give a session a new id (its file name): a hard link under the new name, then the old name removed, so the
 * file is never copied and an existing session is never overwritten (link fails when the name is taken).
 */
export function renameSession(dirs: SessionDirs, rawId: string, rawNewId: string): { id: string; path: string } {
  const found = findSession(dirs, rawId);
  if (!found) throw new UserError(`no session ${JSON.stringify(rawId)}`, "list them with: flashchat sessions");
  const id = resolveSessionId(rawNewId);
  if (id === found.id) return found;
  const path = join(found.path, "..", id + SESSION_EXT);
  if (existsSync(path) || findSession(dirs, id)) throw new UserError(`a session named ${id} exists already`, "pick another name");
  try {
    linkSync(found.path, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new UserError(`a session named ${id} exists already`, "pick another name");
    throw e;
  }
  unlinkSync(found.path);
  return { id, path };
}

/** Sessions whose id or text contains `query` (case-insensitive); all when it is empty. */
export function searchSessions(list: readonly SessionInfo[], query: string): SessionInfo[] {
  const q = query.trim().toLowerCase();
  if (!q) return [...list];
  return list.filter((s) => {
    if (s.id.toLowerCase().includes(q) || s.preview.toLowerCase().includes(q)) return true;
    try {
      return readFileSync(s.path, "utf8").toLowerCase().includes(q);
    } catch {
      return false;
    }
  });
}

export class SessionsView extends ListView implements View {
  readonly name = "sessions" as const;
  readonly help = [
    "j k ↑ ↓ g G  move    Enter  resume in Chat    d  delete (y/N)    r  rename",
    "/TEXT  the sessions whose text contains TEXT",
  ];
  private all: SessionInfo[] = [];
  private shownList: SessionInfo[] = [];

  constructor(app: AppServices) {
    super(app, "sessions");
  }

  shown(): void {
    this.load();
  }

  private load(): void {
    this.all = listSessions(this.app.config.paths);
    this.draw();
  }

  protected draw(): void {
    this.shownList = searchSessions(this.all, this.query);
    const number = new Map(this.all.map((s, i) => [s.id, i + 1]));
    this.pane.header = `${this.all.length} session${this.all.length === 1 ? "" : "s"}${this.query ? ` · matching "${this.query}": ${this.shownList.length}` : ""} · Enter resumes · d deletes · r renames`;
    this.pane.setRows(
      this.shownList.map((s) => {
        const when = s.created.slice(0, 16).replace("T", " ");
        return { text: `${String(number.get(s.id)).padStart(3)}  ${s.id.padEnd(20)} ${when}  ${String(s.turns).padStart(3)} turn${s.turns === 1 ? " " : "s"}  ${s.preview}` };
      }),
    );
  }

  private get current(): SessionInfo | undefined {
    return this.shownList[this.pane.index];
  }

  key(k: KeyEvent): boolean {
    if (this.pane.key(k)) return true;
    const s = this.current;
    const ch = k.sequence;
    if (k.name === "return" && s) {
      this.app.resumeSession(s.id);
      return true;
    }
    if (ch === "d" && s) {
      this.app.confirm(`delete session ${s.id} (${s.turns} turn${s.turns === 1 ? "" : "s"})?`, () => {
        deleteSession(this.app.config.paths, s.id);
        this.app.notify(`deleted ${s.id}`, "ok");
        this.load();
      });
      return true;
    }
    if (ch === "r" && s) {
      this.app.prompt({
        label: `rename ${s.id} to: `,
        value: s.id,
        onInput: (v) => {
          try {
            resolveSessionId(v);
            return { ok: true, message: "✓ a valid name · Enter renames" };
          } catch (e) {
            return { ok: false, message: `✗ ${(e as Error).message}: letters, digits, '.', '_', '-'` };
          }
        },
        onSubmit: (v) => {
          const r = renameSession(this.app.config.paths, s.id, v);
          this.app.notify(`renamed ${s.id} to ${r.id}`, "ok");
          this.load();
        },
      });
      return true;
    }
    return false;
  }
}
