// The chat sessions store: one JSON Lines file per conversation, appended and fsynced message by message.
//
// File: <sessionsDir>/<id>.jsonl (sessions of the old bash tool: ~/.flashchat/sessions/<id>.jsonl).
// Line 1 may be a metadata object {"type":"session","version":1,"id","created","model"?}; every other
// line is one message {"role":"system"|"user"|"assistant","content":"..."} with optional fields
// time (ISO 8601), model, reasoning, stats {prompt_tokens, completion_tokens, tok_per_s, ttft_ms, total_ms}
// and interrupted (true when the reply was stopped or the server went away before it finished).
// While a reply streams, its text is journalled as partial records {"type":"partial","reply":ID,
// "content":DELTA,"reasoning"?:DELTA} (at most a second behind the screen); the complete reply
// carries the same "reply" id and supersedes them. Partial records with no complete reply after them
// (the chat was killed) read as one assistant message marked interrupted.
// A line {"type":"undo","scope":"exchange"|"reply"} takes back what came before it (chat's /undo: the last
// user message and its replies; /retry: the last replies), so the file stays append-only.
// Readers skip blank lines and lines that are not valid JSON messages (a half-written last line
// after a crash), with a warning. Writers append whole lines with O_APPEND in one write, so
// several writers never interleave inside a line.
import { closeSync, existsSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, realpathSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "pathe";
import { UserError } from "../errors.ts";
import { appendLineDurable } from "../fs.ts";

export const SESSION_EXT = ".jsonl";
export const SESSION_FORMAT_VERSION = 1;

export type Role = "system" | "user" | "assistant";

export interface ReplyStats {
  prompt_tokens?: number;
  cached_tokens?: number;
  completion_tokens?: number;
  tok_per_s?: number;
  ttft_ms?: number;
  total_ms?: number;
}

export interface SessionMessage {
  role: Role;
  content: string;
  /** ISO 8601 time the message was written. */
  time?: string;
  model?: string;
  /** The model's thinking for this reply (never sent back to the model). */
  reasoning?: string;
  stats?: ReplyStats;
  /** The reply was cut short (Ctrl-C, server gone); content is what had arrived. */
  interrupted?: boolean;
}

/** A piece of a reply still streaming (see the file comment). */
export interface PartialRecord {
  type: "partial";
  reply: string;
  content: string;
  reasoning?: string;
  time?: string;
  model?: string;
}

export interface SessionMeta {
  type: "session";
  version: number;
  id: string;
  created: string;
  model?: string;
}

/** chat's /undo ("exchange": the last user message and the replies after it) and /retry ("reply": those replies). */
export interface UndoRecord {
  type: "undo";
  scope: "exchange" | "reply";
  time?: string;
}

/** Remove what an undo takes back from `messages` (in place); returns how many messages went. */
export function applyUndo(messages: SessionMessage[], scope: UndoRecord["scope"]): number {
  const lastUser = messages.findLastIndex((m) => m.role === "user");
  if (scope === "exchange" && lastUser < 0) return 0;
  const from = scope === "exchange" ? lastUser : lastUser + 1;
  let removed = 0;
  for (let i = messages.length - 1; i >= from; i--) {
    if (messages[i]!.role === "system") continue; // a system prompt set meanwhile stays
    messages.splice(i, 1);
    removed++;
  }
  return removed;
}

export interface SessionDirs {
  sessionsDir: string;
  legacySessionsDir?: string;
}

export interface SessionInfo {
  id: string;
  path: string;
  /** ISO 8601: metadata `created`, else the time in the id, else the file's modification time. */
  created: string;
  /** User messages. */
  turns: number;
  messages: number;
  /** First words of the first user message. */
  preview: string;
  /** Written by the bash tool (found in the legacy folder). */
  legacy: boolean;
}

export interface LoadedSession {
  id: string;
  path: string;
  meta?: SessionMeta;
  messages: SessionMessage[];
  /** Lines skipped (corrupt or half-written), one sentence each. */
  warnings: string[];
  legacy: boolean;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A new id: chat-<unix ms>. */
export function createSessionId(now = Date.now()): string {
  return `chat-${now}`;
}

/**
 * Check a session id given by the user and return it without a trailing .jsonl.
 * Ids are plain names: letters, digits, '.', '_', '-'; no separators, no '..', not absolute.
 */
export function resolveSessionId(raw: string): string {
  const id = raw.trim().endsWith(SESSION_EXT) ? raw.trim().slice(0, -SESSION_EXT.length) : raw.trim();
  if (!ID_RE.test(id) || id.includes("..")) {
    throw new UserError(
      `invalid session id ${JSON.stringify(raw)}`,
      "session ids look like chat-1732400000000 (letters, digits, '.', '_', '-'; no paths); list them with: flashchat sessions",
      2,
    );
  }
  return id;
}

const dirsOf = (dirs: SessionDirs) =>
  [
    { dir: dirs.sessionsDir, legacy: false },
    ...(dirs.legacySessionsDir && resolve(dirs.legacySessionsDir) !== resolve(dirs.sessionsDir) ? [{ dir: dirs.legacySessionsDir, legacy: true }] : []),
  ];

/** Where a session lives (current folder first, then the legacy one); undefined if nowhere. */
export function findSession(dirs: SessionDirs, rawId: string): { id: string; path: string; legacy: boolean } | undefined {
  const id = resolveSessionId(rawId);
  for (const { dir, legacy } of dirsOf(dirs)) {
    const path = join(dir, id + SESSION_EXT);
    if (isInside(dir, path) && existsSync(path) && statSync(path).isFile()) return { id, path, legacy };
  }
  return undefined;
}

/** True when `path` (resolved through symlinks of its folder) is directly inside `dir`. */
function isInside(dir: string, path: string): boolean {
  try {
    return realpathSync(dirname(path)) === realpathSync(dir) && basename(path) !== "" && !basename(path).startsWith(".");
  } catch {
    return false;
  }
}

/** Parse a session file's text. Never throws: bad lines become warnings. */
export function parseSession(text: string, label = "session"): { meta?: SessionMeta; messages: SessionMessage[]; warnings: string[] } {
  const lines = text.split("\n");
  const endsClean = text.endsWith("\n") || text === "";
  const messages: SessionMessage[] = [];
  const warnings: string[] = [];
  let meta: SessionMeta | undefined;
  /** Replies seen only as partial records so far, by reply id: the message standing in for each. */
  const open = new Map<string, SessionMessage>();
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    const isLast = i === lines.length - 1 && !endsClean;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      warnings.push(isLast ? `${label}: skipped a half-written last line (${i + 1})` : `${label}: skipped corrupt line ${i + 1}`);
      return;
    }
    const o = value as Record<string, unknown>;
    if (o && typeof o === "object" && o.type === "session" && !("role" in o)) {
      if (messages.length === 0 && !meta) meta = o as unknown as SessionMeta;
      return;
    }
    if (o && typeof o === "object" && o.type === "partial" && typeof o.reply === "string" && !("role" in o)) {
      let m = open.get(o.reply);
      if (!m) {
        m = { role: "assistant", content: "", interrupted: true };
        if (typeof o.time === "string") m.time = o.time;
        if (typeof o.model === "string") m.model = o.model;
        open.set(o.reply, m);
        messages.push(m);
      }
      if (typeof o.content === "string") m.content += o.content;
      if (typeof o.reasoning === "string" && o.reasoning) m.reasoning = (m.reasoning ?? "") + o.reasoning;
      return;
    }
    if (o && typeof o === "object" && o.type === "undo" && (o.scope === "exchange" || o.scope === "reply")) {
      applyUndo(messages, o.scope);
      return;
    }
    const msg = toMessage(o);
    const superseded = msg && typeof o.reply === "string" ? open.get(o.reply) : undefined;
    if (superseded) {
      messages.splice(messages.indexOf(superseded), 1);
      open.delete(o.reply as string);
    }
    if (msg) messages.push(msg);
    else warnings.push(`${label}: skipped line ${i + 1} (not a {"role","content"} message)`);
  });
  return { meta, messages, warnings };
}

function toMessage(o: Record<string, unknown>): SessionMessage | undefined {
  if (!o || typeof o !== "object" || Array.isArray(o)) return undefined;
  if (o.role !== "user" && o.role !== "assistant" && o.role !== "system") return undefined;
  if (typeof o.content !== "string") return undefined;
  const m: SessionMessage = { role: o.role, content: o.content };
  if (typeof o.time === "string") m.time = o.time;
  if (typeof o.model === "string") m.model = o.model;
  if (typeof o.reasoning === "string" && o.reasoning) m.reasoning = o.reasoning;
  if (o.stats && typeof o.stats === "object") m.stats = o.stats as ReplyStats;
  if (o.interrupted === true) m.interrupted = true;
  return m;
}

/** Read a session by id (current folder, then legacy). UserError when there is no such session. */
export function loadSession(dirs: SessionDirs, rawId: string): LoadedSession {
  const found = findSession(dirs, rawId);
  if (!found) throw new UserError(`no session ${JSON.stringify(rawId.trim())}`, "list them with: flashchat sessions");
  const parsed = parseSession(readFileSync(found.path, "utf8"), found.id);
  return { ...found, ...parsed };
}

function createdOf(id: string, meta: SessionMeta | undefined, path: string): string {
  if (meta?.created && !Number.isNaN(Date.parse(meta.created))) return new Date(meta.created).toISOString();
  const m = /^chat-(\d{9,13})$/.exec(id);
  if (m) {
    const n = Number(m[1]);
    return new Date(m[1]!.length >= 12 ? n : n * 1000).toISOString(); // bash tool: seconds; us: milliseconds
  }
  return statSync(path).mtime.toISOString();
}

/** First `nWords` words of a text, on one line, with … when cut. */
export function firstWords(text: string, nWords = 8, maxChars = 60): string {
  const words = text.replace(/\s+/g, " ").trim().split(" ").filter(Boolean);
  let out = words.slice(0, nWords).join(" ");
  let cut = words.length > nWords;
  if (out.length > maxChars) {
    out = out.slice(0, maxChars - 1).trimEnd();
    cut = true;
  }
  return cut ? `${out}…` : out;
}

/** Every session in both folders, newest first. A session id present in both is listed once (current folder). */
export function listSessions(dirs: SessionDirs): SessionInfo[] {
  const seen = new Set<string>();
  const out: SessionInfo[] = [];
  for (const { dir, legacy } of dirsOf(dirs)) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!name.endsWith(SESSION_EXT)) continue;
      const id = name.slice(0, -SESSION_EXT.length);
      if (!ID_RE.test(id) || id.includes("..") || seen.has(id)) continue;
      const path = join(dir, name);
      let text: string;
      try {
        if (!statSync(path).isFile()) continue;
        text = readFileSync(path, "utf8");
      } catch {
        continue;
      }
      seen.add(id);
      const { meta, messages } = parseSession(text, id);
      const firstUser = messages.find((m) => m.role === "user");
      out.push({
        id,
        path,
        created: createdOf(id, meta, path),
        turns: messages.filter((m) => m.role === "user").length,
        messages: messages.length,
        preview: firstUser ? firstWords(firstUser.content) : "",
        legacy,
      });
    }
  }
  return out.sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : a.id < b.id ? 1 : -1));
}

/**
 * A session as the user names it: a number `flashchat sessions` shows (1 = newest), an id, or (with `prefix`: resume
 * and show, never delete) the start of an id when only one session has it. UserError (exit 2) for a number out of
 * range or an ambiguous prefix; an unknown id is returned as given (the caller says "no session").
 */
export function sessionRef(dirs: SessionDirs, raw: string, opts: { prefix?: boolean } = {}): string {
  const a = raw.trim();
  if (!a) throw new UserError("no session given", "name one by the number `flashchat sessions` shows, or its id", 2);
  const numbered = /^\d+$/.test(a);
  const list = numbered || (opts.prefix && !findSession(dirs, a)) ? listSessions(dirs) : [];
  if (numbered) {
    const n = Number(a);
    if (n >= 1 && n <= list.length) return list[n - 1]!.id;
    throw new UserError(`no session number ${n}`, list.length ? `\`flashchat sessions\` shows numbers 1 to ${list.length}` : "there are no saved sessions yet", 2);
  }
  if (!opts.prefix || !list.length) return a; // the id exists, or no prefix matching: the caller reports either way
  const want = resolveSessionId(a);
  const matches = list.filter((s) => s.id.startsWith(want));
  if (matches.length === 1) return matches[0]!.id;
  if (matches.length > 1) {
    const shown = matches.slice(0, 5).map((s) => s.id).join(", ");
    throw new UserError(`"${a}" matches ${matches.length} sessions: ${shown}${matches.length > 5 ? ", …" : ""}`, "give more of the id, or the number `flashchat sessions` shows", 2);
  }
  return a;
}

/** Delete a session file; only ever a <id>.jsonl directly inside one of the session folders. */
export function deleteSession(dirs: SessionDirs, rawId: string): { id: string; path: string } {
  const found = findSession(dirs, rawId);
  if (!found) throw new UserError(`no session ${JSON.stringify(rawId.trim())}`, "list them with: flashchat sessions");
  if (!lstatSync(found.path).isFile()) throw new UserError(`${found.path} is not a regular file; not deleting it`);
  rmSync(found.path);
  return { id: found.id, path: found.path };
}

/** True when the file exists, is not empty and its last byte is not a newline (a writer died mid-line). */
function endsMidLine(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return false;
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return false;
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, size - 1);
    return b[0] !== 0x0a;
  } finally {
    closeSync(fd);
  }
}

/** Append one record (message, partial reply, undo or metadata) as a line, fsynced. A torn last line is closed off first. */
export function appendRecord(path: string, record: SessionMessage | SessionMeta | PartialRecord | UndoRecord | (SessionMessage & { reply: string })): void {
  const line = JSON.stringify(record);
  appendLineDurable(path, endsMidLine(path) ? `\n${line}` : line);
}

/** A session being written: its id, path and the messages so far. */
export class Session {
  constructor(
    readonly id: string,
    readonly path: string,
    readonly messages: SessionMessage[] = [],
    readonly legacy = false,
  ) {}

  /** Start a new session file with its metadata line (written now, so the id is taken). */
  static create(dir: string, opts: { model?: string; now?: number } = {}): Session {
    let now = opts.now ?? Date.now();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // claim the id with an exclusive create: two chats started in the same millisecond get different ids
    for (;;) {
      try {
        closeSync(openSync(join(dir, createSessionId(now) + SESSION_EXT), "wx", 0o600));
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        now++;
      }
    }
    const id = createSessionId(now);
    const path = join(dir, id + SESSION_EXT);
    const meta: SessionMeta = { type: "session", version: SESSION_FORMAT_VERSION, id, created: new Date(now).toISOString() };
    if (opts.model) meta.model = opts.model;
    appendRecord(path, meta);
    return new Session(id, path);
  }

  static open(dirs: SessionDirs, rawId: string): { session: Session; warnings: string[] } {
    const s = loadSession(dirs, rawId);
    return { session: new Session(s.id, s.path, s.messages, s.legacy), warnings: s.warnings };
  }

  /** Append a message to the file (fsynced) and to memory. */
  append(message: SessionMessage): SessionMessage {
    const m: SessionMessage = { ...message, time: message.time ?? new Date().toISOString() };
    appendRecord(this.path, m);
    this.messages.push(m);
    return m;
  }

  /** Start journalling a reply that is about to stream (see ReplyJournal). */
  startReply(opts: { model?: string; flushMs?: number } = {}): ReplyJournal {
    return new ReplyJournal(this, opts.model, opts.flushMs);
  }

  /** Take back the last exchange or the last replies (an undo line in the file); 0 when there is nothing to take back. */
  undo(scope: UndoRecord["scope"]): number {
    const removed = applyUndo([...this.messages], scope);
    if (removed === 0) return 0;
    appendRecord(this.path, { type: "undo", scope, time: new Date().toISOString() });
    applyUndo(this.messages, scope);
    return removed;
  }

  get turns(): number {
    return this.messages.filter((m) => m.role === "user").length;
  }

  /** The system prompt in force: the last system message, if any. */
  get system(): string | undefined {
    return this.messages.findLast((m) => m.role === "system")?.content || undefined;
  }
}

/**
 * A reply as it streams: text handed to `add` is appended to the session file as a partial record (fsynced)
 * at most `flushMs` later, so a chat killed mid-reply keeps what it had shown but the last moments.
 * `finish` writes the complete message, which supersedes the partial records.
 */
export class ReplyJournal {
  readonly id = `r${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  private content = "";
  private reasoning = "";
  private timer?: ReturnType<typeof setTimeout>;
  private nWritten = 0;

  constructor(
    private readonly session: Session,
    private readonly model?: string,
    private readonly flushMs = 500,
  ) {}

  add(kind: "content" | "reasoning", text: string): void {
    if (!text) return;
    if (kind === "content") this.content += text;
    else this.reasoning += text;
    this.timer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  /** Append what arrived since the last flush, if anything. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.content && !this.reasoning) return;
    const record: PartialRecord = { type: "partial", reply: this.id, content: this.content };
    if (this.reasoning) record.reasoning = this.reasoning;
    if (this.nWritten++ === 0) {
      record.time = new Date().toISOString();
      if (this.model) record.model = this.model;
    }
    appendRecord(this.session.path, record);
    this.content = "";
    this.reasoning = "";
  }

  /** Stop the timer without writing (nothing of the reply arrived). */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Write the reply as one complete message (file and memory); the partial records before it no longer count. */
  finish(message: SessionMessage): SessionMessage {
    this.cancel();
    const m: SessionMessage = { ...message, time: message.time ?? new Date().toISOString() };
    appendRecord(this.session.path, { ...m, reply: this.id });
    this.session.messages.push(m);
    return m;
  }
}

/**
 * The conversation to send to the model: the system prompt in force first (templates want it there),
 * then every user and assistant message in order, content only (reasoning is not sent back).
 * An empty interrupted reply is left out; a user message left without a reply is kept.
 */
export function resolveRequestMessages(messages: readonly SessionMessage[]): { role: Role; content: string }[] {
  const system = messages.findLast((m) => m.role === "system")?.content;
  const out: { role: Role; content: string }[] = system ? [{ role: "system", content: system }] : [];
  for (const m of messages) {
    if (m.role === "system") continue;
    if (m.role === "assistant" && m.content === "") continue;
    out.push({ role: m.role, content: m.content });
  }
  return out;
}
