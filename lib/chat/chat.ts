// The interactive chat: read a message, send the whole conversation, stream the rendered reply,
// append both to the session file; slash commands; Ctrl-C stops a reply, Ctrl-D or /quit leaves.
import { requestSampling } from "../model/target.ts";
import { join } from "pathe";
import type { ResolvedConfig } from "../config/schema.ts";
import { isUserError } from "../errors.ts";
import { isQuiet, logStep } from "../log.ts";
import { createSpinner } from "../progress.ts";
import { loadContextLength } from "../client/api.ts";
import { renderStats, type ReplyOutcome, type ReplyResult, streamSessionReply } from "./reply.ts";
import { History, LineEditor, PipeReader, type ReadResult } from "./line-editor.ts";
import { resolveColor } from "../term.ts";
import { ANSI, MarkdownRenderer } from "./render.ts";
import { renderSessionChoices } from "./session-list.ts";
import { type ReplyStats, Session, type SessionMessage, listSessions, sessionRef } from "./sessions.ts";
import { createRandomSeed } from "../seed.ts";
import { closest, describeAllowed, parseValue } from "../config/validate.ts";
import { KEY_SPECS } from "../config/schema.ts";

/** How chat reaches a server: the base URL and model id, starting the server when needed. */
export interface ServerLink {
  /** Make sure a server is up (start it if allowed); returns its base URL and model id. */
  ensure(): Promise<{ baseUrl: string; model?: string; started?: boolean }>;
}

export interface ChatOptions {
  /** Session to continue: its number in `flashchat sessions`, id or a unique start of the id; "" = ask (terminal). */
  resume?: string;
  server: ServerLink;
  input?: NodeJS.ReadStream;
  output?: NodeJS.WriteStream;
  env?: Record<string, string | undefined>;
  /** Messages of a resumed session shown before the prompt. */
  showLast?: number;
  /** Bearer token for a server that requires one (FLASHCHAT_API_KEY). */
  apiKey?: string;
}

export const HELP = [
  "/help              this list",
  "/new               start a new session (this one stays saved)",
  "/sessions          list saved sessions",
  "/resume [N|ID]     continue a saved session (asks when no N or ID)",
  "/think on|off      show or hide the model's thinking",
  "/system TEXT       set the system prompt (/system - removes it; /system shows it)",
  "/undo              take back the last exchange (your message and its reply)",
  "/retry             ask for the last reply again (a new seed)",
  "/set [KEY VALUE]   sampling for this session: temperature, top_p, max_tokens, seed (/set alone lists them)",
  "/clear             clear the screen (the conversation is kept)",
  "/quit              leave (Ctrl-D too)",
  "",
  "Enter sends. Alt-Enter or a trailing \\ starts a new line; pasted text keeps its lines.",
  "Ctrl-C stops a reply (the session keeps what arrived); ↑/↓ recall earlier messages.",
].join("\n");

export const PROMPT = "> ";

/** What `/set` changes, by the name typed in chat, with the setting that gives its value otherwise. */
export const SET_KEYS = { temperature: "TEMPERATURE", top_p: "TOP_P", max_tokens: "MAX_TOKENS", seed: "SEED" } as const;
export type SetKey = keyof typeof SET_KEYS;

/** Sampling of this chat: /set values over the settings; undefined = the server's default (random seed). */
export interface ChatSampling {
  temperature?: number;
  topP?: number;
  maxTokens?: number;
  seed?: number;
}

// the stats helpers moved to ./reply.ts (shared with the TUI); kept importable from here
export { renderStats, resolveStats } from "./reply.ts";

/** Share of the context past which chat warns that the conversation is about to stop fitting. */
export const CONTEXT_WARN_SHARE = 0.8;

export class ChatApp {
  private session?: Session;
  private showThinking: boolean;
  private pendingSystem?: string;
  private readonly color: boolean;
  private readonly out: NodeJS.WriteStream;
  private readonly input: NodeJS.ReadStream;
  private readonly tty: boolean;
  private readonly editor?: LineEditor;
  private readonly pipe?: PipeReader;
  private serverOk = false;
  private startedServer = false;
  private link?: { baseUrl: string; model?: string; started?: boolean };
  private contextLength?: number;
  /** Values given with /set for this chat (a key present with undefined: back to the server's default). */
  private readonly overrides: Partial<Record<SetKey, number | undefined>> = {};

  constructor(
    readonly config: ResolvedConfig,
    readonly opts: ChatOptions,
  ) {
    this.out = opts.output ?? process.stdout;
    this.input = opts.input ?? process.stdin;
    this.tty = Boolean(this.input.isTTY && this.out.isTTY);
    this.color = resolveColor(config.colorOutput, this.out.isTTY, opts.env ?? process.env);
    this.showThinking = config.showThinking;
    if (this.tty) this.editor = new LineEditor(new History(join(config.paths.configDir, "chat-history")), { input: this.input, output: this.out });
    else this.pipe = new PipeReader(this.input);
  }

  /** Terminal width for wrapping and tables (read per reply: the window may have been resized). */
  private get columns(): number | undefined {
    return this.tty ? this.out.columns || 80 : undefined;
  }

  private write(s: string): void {
    this.out.write(s);
  }

  private dim(s: string): string {
    return this.color ? `${ANSI.dim}${s}${ANSI.reset}` : s;
  }

  private note(s: string): void {
    this.write(`${this.dim(s)}\n`);
  }

  /** A note -q leaves out (banner, stats, "saved" lines): -q prints only the replies and errors. */
  private banner(s: string): void {
    if (!isQuiet()) this.note(s);
  }

  private get dirs() {
    return this.config.paths;
  }

  async run(): Promise<void> {
    if (this.opts.resume !== undefined) {
      if (this.opts.resume.trim() === "") {
        if ((await this.pickSession()) === "quit") return;
      } else this.resume(sessionRef(this.dirs, this.opts.resume, { prefix: true }));
    }
    await this.connect();
    this.banner(`flashchat${this.link?.model ? ` · ${this.link.model}` : ""} · /help for commands · Ctrl-D to leave`);
    for (;;) {
      const r = await this.read(PROMPT);
      if (r.type === "eof") break;
      if (r.type === "interrupt") {
        if (!r.text) this.note("(Ctrl-D or /quit to leave)");
        continue;
      }
      const text = r.text;
      if (!text.trim()) continue;
      if (text.startsWith("/")) {
        if ((await this.command(text)) === "quit") break;
        continue;
      }
      await this.turn(text);
    }
    if (this.session) this.banner(`session ${this.session.id} saved · resume with: flashchat chat --resume ${this.session.id}`);
    if (this.startedServer) this.banner("the server keeps running in the background (flashchat serve --stop stops it)");
  }

  /** `chat --resume` with no session: the numbered list, then a number or id (Enter alone: a new chat). */
  private async pickSession(): Promise<"quit" | void> {
    const list = listSessions(this.dirs);
    if (!list.length) return this.note("no saved sessions yet: starting a new one");
    for (const l of renderSessionChoices(list, this.out.columns || 80)) this.write(`${l}\n`);
    for (;;) {
      const r = await this.read("session number or id (Enter: a new chat): ");
      if (r.type === "eof") return "quit";
      if (r.type !== "line" || !r.text.trim()) return this.note("new session");
      try {
        return this.resume(sessionRef(this.dirs, r.text, { prefix: true }));
      } catch (e) {
        if (!isUserError(e)) throw e;
        this.note(e.hint ? `${e.message} (${e.hint})` : e.message);
      }
    }
  }

  /** The sampling the next request uses: /set values over the settings. */
  get sampling(): ChatSampling {
    const fromConfig = { ...requestSampling(this.config), maxTokens: this.config.maxTokens ?? undefined, seed: this.config.seed ?? undefined };
    const pick = (k: SetKey, name: keyof ChatSampling) => (k in this.overrides ? this.overrides[k] : fromConfig[name]);
    return { temperature: pick("temperature", "temperature"), topP: pick("top_p", "topP"), maxTokens: pick("max_tokens", "maxTokens"), seed: pick("seed", "seed") };
  }

  /** `/set` alone: every key, its value for this chat and where it comes from. */
  private renderSampling(): string {
    const s = this.sampling;
    const values: Record<SetKey, number | undefined> = { temperature: s.temperature, top_p: s.topP, max_tokens: s.maxTokens, seed: s.seed };
    const unset: Record<SetKey, string> = {
      temperature: "the model's recommended (server default)",
      top_p: "the model's recommended (server default)",
      max_tokens: "the model's own (server default)",
      seed: "a new random seed for every reply",
    };
    return (Object.keys(SET_KEYS) as SetKey[])
      .map((k) => {
        const from = k in this.overrides ? "/set" : `${SET_KEYS[k]} setting`;
        const v = values[k];
        return `${k.padEnd(12)} ${v === undefined ? unset[k] : `${v}  (${from})`}`;
      })
      .join("\n");
  }

  /** `/set KEY VALUE` for this chat, checked as the setting is (`-` or `default`: back to the setting / server default). */
  private setSampling(words: string[]): void {
    if (!words.length) return this.note(this.renderSampling());
    const name = words[0]!.toLowerCase().replace(/-/g, "_");
    const key = (name === "tokens" ? "max_tokens" : name === "topp" ? "top_p" : name) as SetKey;
    if (!(key in SET_KEYS)) {
      const near = closest(name, Object.keys(SET_KEYS));
      return this.note(`unknown /set key ${words[0]}${near ? ` (did you mean ${near}?)` : ""}: one of ${Object.keys(SET_KEYS).join(", ")}`);
    }
    if (words.length !== 2) return this.note(`usage: /set ${key} VALUE (/set ${key} - goes back to the default)`);
    const raw = words[1]!;
    if (raw === "-" || raw.toLowerCase() === "default" || (key === "seed" && raw.toLowerCase() === "random")) {
      this.overrides[key] = undefined;
      return this.note(`${key}: ${key === "seed" ? "a new random seed for every reply" : "back to the default"}`);
    }
    const spec = KEY_SPECS.get(SET_KEYS[key])!;
    const parsed = parseValue(spec, raw);
    if (!parsed.ok || parsed.value === null) return this.note(`invalid ${key} ${JSON.stringify(raw)}: expected ${describeAllowed({ ...spec, optional: false })}`);
    this.overrides[key] = parsed.value as number;
    this.note(`${key} ${parsed.value} for this chat${key === "seed" ? " (the same seed and conversation give the same reply)" : ""}`);
  }

  private read(prompt: string): Promise<ReadResult> {
    if (this.editor) return this.editor.read(prompt);
    return this.pipe!.read();
  }

  private async connect(): Promise<void> {
    this.link = await this.opts.server.ensure();
    if (this.link.started) this.startedServer = true;
    this.serverOk = true;
    this.contextLength = await loadContextLength(this.link.baseUrl, this.opts.apiKey);
  }

  private ensureSession(): Session {
    if (!this.session) {
      this.session = Session.create(this.dirs.sessionsDir, { model: this.link?.model });
      if (this.pendingSystem !== undefined) this.session.append({ role: "system", content: this.pendingSystem });
      this.pendingSystem = undefined;
    }
    return this.session;
  }

  /** Load a session and show its last messages. */
  private resume(id: string): void {
    const { session, warnings } = Session.open(this.dirs, id);
    for (const w of warnings) this.write(`${this.color ? "\x1b[33m" : ""}warning: ${w}${this.color ? ANSI.reset : ""}\n`);
    this.session = session;
    this.pendingSystem = undefined;
    const shown = session.messages.filter((m) => m.role !== "system");
    const n = this.opts.showLast ?? 6;
    const last = shown.slice(-n);
    this.note(`resumed ${session.id} · ${session.turns} turn${session.turns === 1 ? "" : "s"}${shown.length > last.length ? ` · last ${last.length} messages:` : ""}`);
    for (const m of last) {
      if (m.role === "user") this.write(`${this.color ? ANSI.bold : ""}${PROMPT}${m.content.replace(/\n/g, "\n  ")}${this.color ? ANSI.reset : ""}\n`);
      else {
        const r = new MarkdownRenderer({ color: this.color, write: (s) => this.write(s), width: this.columns });
        if (this.showThinking && m.reasoning) r.writeReasoning(m.reasoning);
        r.write(m.content);
        r.end();
        if (m.interrupted) this.note("[interrupted]");
      }
    }
    if (session.system) this.note(`system prompt: ${session.system}`);
  }

  private async command(line: string): Promise<"quit" | void> {
    const [cmd = "", ...restWords] = line.trim().split(/\s+/);
    const rest = line.trim().slice(cmd.length).trim();
    switch (cmd.toLowerCase()) {
      case "/help":
      case "/?":
        this.write(`${HELP}\n`);
        return;
      case "/quit":
      case "/exit":
      case "/q":
        return "quit";
      case "/new":
        if (this.session) this.note(`session ${this.session.id} saved`);
        this.session = undefined;
        this.pendingSystem = undefined;
        this.note("new session");
        return;
      case "/clear":
        if (this.tty) this.write("\x1b[H\x1b[2J");
        return;
      case "/sessions": {
        const list = listSessions(this.dirs);
        if (!list.length) this.note("no saved sessions yet");
        for (const l of renderSessionChoices(list.slice(0, 20), this.out.columns || 80)) this.write(`${l}\n`);
        if (list.length > 20) this.note(`(${list.length - 20} older: flashchat sessions lists them all)`);
        return;
      }
      case "/resume": {
        const list = listSessions(this.dirs);
        let answer = rest;
        if (!answer) {
          if (!list.length) return this.note("no saved sessions yet");
          for (const l of renderSessionChoices(list, this.out.columns || 80)) this.write(`${l}\n`);
          const r = this.editor ? await new LineEditor(new History(), { input: this.input, output: this.out }).read("number or id: ") : await this.pipe!.read();
          if (r.type !== "line" || !r.text.trim()) return;
          answer = r.text;
        }
        try {
          this.resume(sessionRef(this.dirs, answer, { prefix: true }));
        } catch (e) {
          if (isUserError(e)) return this.note(e.message);
          throw e;
        }
        return;
      }
      case "/think": {
        const v = restWords[0]?.toLowerCase();
        if (v === "on" || v === "off") this.showThinking = v === "on";
        else if (v) return this.note("usage: /think on|off");
        this.note(`thinking is ${this.showThinking ? "shown" : "hidden"}`);
        return;
      }
      case "/system": {
        if (!rest) {
          const cur = this.session?.system ?? this.pendingSystem;
          this.note(cur ? `system prompt: ${cur}` : "no system prompt (set one with /system TEXT)");
          return;
        }
        const text = rest === "-" ? "" : rest;
        if (this.session) this.session.append({ role: "system", content: text });
        else this.pendingSystem = text;
        this.note(text ? "system prompt set" : "system prompt removed");
        return;
      }
      case "/undo": {
        const n = this.session?.undo("exchange") ?? 0;
        this.note(n ? `took back the last exchange (${n} message${n === 1 ? "" : "s"})` : "nothing to take back");
        return;
      }
      case "/retry": {
        if (!this.session?.messages.some((m) => m.role === "user")) return this.note("nothing to retry yet");
        this.session.undo("reply");
        // a new seed: with none set the server picks a random one; a fixed one is replaced for this reply
        let seed: number | undefined;
        if (this.sampling.seed !== undefined) {
          seed = createRandomSeed();
          this.note(`(seed ${seed} for this reply)`);
        }
        if (this.sampling.temperature === 0) this.note("temperature is 0 (greedy): the reply comes out the same (/set temperature 0.7 varies it)");
        await this.turn(undefined, { seed });
        return;
      }
      case "/set":
        return this.setSampling(restWords);
      default:
        this.note(`unknown command ${cmd} (/help lists them)`);
    }
  }

  /**
   * One exchange: stream the reply to the conversation plus `text` (undefined: the conversation as it is, /retry)
   * and save both (complete or interrupted). The message is saved once the server takes it: one the server refuses
   * (longer than the context) never enters the session, so the next turns still fit.
   */
  async turn(text: string | undefined, opts: { seed?: number } = {}): Promise<ReplyOutcome> {
    const session = this.ensureSession();
    const pending: SessionMessage | undefined = text === undefined ? undefined : { role: "user", content: text };
    if (!this.serverOk) {
      try {
        await this.connect();
      } catch (e) {
        if (pending) session.append(pending);
        this.note(`cannot reach the server: ${(e as Error).message}`);
        this.note("your message is saved; send another to try again");
        return "server-gone";
      }
    }
    const controller = new AbortController();
    const stopWatching = this.watchInterrupt(controller);
    const renderer = new MarkdownRenderer({ color: this.color, write: (s) => this.write(s), width: this.columns });
    const spinner = this.createSpinner();
    const startMs = performance.now();
    let reply: ReplyResult;
    try {
      reply = await streamSessionReply({
        session,
        pending,
        request: {
          baseUrl: this.link!.baseUrl,
          model: this.link!.model,
          ...this.sampling,
          ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
          signal: controller.signal,
          apiKey: this.opts.apiKey,
        },
        onFirstToken: () => logStep("first token (TTFT)", startMs),
        onText: (kind, text) => {
          if (kind === "reasoning") {
            if (this.showThinking) {
              spinner.stop();
              renderer.writeReasoning(text);
            } else spinner.update("thinking");
          } else {
            spinner.stop();
            renderer.write(text);
          }
        },
      });
    } finally {
      stopWatching();
      spinner.stop();
      renderer.end();
    }
    const { outcome, failure, content, reasoning, stats } = reply;
    if (outcome === "server-gone") this.serverOk = false;
    logStep(`reply: ${outcome} (${stats.completion_tokens} tokens)`, startMs);
    if (!reply.saved) {
      this.note(failure);
      if (pending) this.note("this message was not saved: shorten it, /undo earlier exchanges, or /new for a fresh session");
      return outcome;
    }
    if (!this.showThinking && reasoning && !content.trim()) this.note("(only thinking so far; /think on shows it)");
    if (outcome === "refused") this.note(failure);
    else if (outcome === "interrupted") this.note("[stopped · the session keeps what arrived]");
    else if (outcome === "server-gone") {
      this.note(`reply cut off: ${failure}`);
      this.note(`your session is intact (${session.id}); send your next message to reconnect (the server is started again if needed)`);
    } else {
      this.banner(renderStats(stats));
      this.warnNearContext(stats);
    }
    return outcome;
  }

  /** Say so when the conversation fills most of the context, before a turn fails for it. */
  private warnNearContext(stats: ReplyStats): void {
    const ctx = this.contextLength;
    if (!ctx || stats.prompt_tokens === undefined) return;
    const used = stats.prompt_tokens + (stats.completion_tokens ?? 0);
    if (used < CONTEXT_WARN_SHARE * ctx) return;
    this.note(
      `the conversation fills ${used} of the ${ctx}-token context (${Math.round((100 * used) / ctx)}%): ` +
        "soon a message will not fit · /undo takes back the last exchange, /new starts a fresh session",
    );
  }

  /** Ctrl-C during a reply aborts it: raw-mode key on a terminal, SIGINT otherwise. */
  private watchInterrupt(controller: AbortController): () => void {
    const onSigint = () => controller.abort();
    process.on("SIGINT", onSigint);
    let onData: ((d: Buffer) => void) | undefined;
    if (this.tty && this.input.setRawMode) {
      this.input.setRawMode(true);
      onData = (d: Buffer) => {
        if (d.includes(3)) controller.abort();
        else this.editor?.pushInput(d.toString()); // typed during the reply: it goes to the next prompt
      };
      this.input.on("data", onData);
      this.input.resume();
    }
    return () => {
      process.off("SIGINT", onSigint);
      if (onData) {
        this.input.off("data", onData);
        this.input.setRawMode?.(false);
        this.input.pause();
      }
    };
  }

  /** A dim "waiting…" on the reply line until text arrives (terminals only). */
  private createSpinner(): { update(label: string): void; stop(): void } {
    return createSpinner("waiting", { tty: this.tty, write: (s) => this.write(s), style: (s) => this.dim(`${s}…`), intervalMs: 120 });
  }
}

export async function runChat(config: ResolvedConfig, opts: ChatOptions): Promise<void> {
  await new ChatApp(config, opts).run();
}
