// The TUI's chat: the conversation as Markdown in a scrolling pane, thinking folded or shown, tool calls marked
// as such, a stats line per reply; the input line under it. Replies stream from the local server (lib/client)
// and are journalled to the session file as they arrive (lib/chat/sessions), exactly as `flashchat chat` does.
import { BoxRenderable, InputRenderable, InputRenderableEvents, type KeyEvent, MarkdownRenderable, RGBA, ScrollBoxRenderable, SyntaxStyle, TextRenderable } from "@opentui/core";
import type { Session } from "../chat/sessions.ts";
import { isUserError } from "../errors.ts";
import type { Theme } from "./theme.ts";
import { type AppServices, backendLabel, colourOf, inputColours, paint, styled, type View } from "./ui.ts";

/**
 * What talking to the server needs (client, sessions, the reply helper): imported when first needed or, in the
 * background, once the first frame is drawn — the TUI's start does not wait for it.
 */
let chatDeps: ReturnType<typeof importChatDeps> | undefined;
async function importChatDeps() {
  const [reply, sessions, local, api, target, control] = await Promise.all([
    import("../chat/reply.ts"),
    import("../chat/sessions.ts"),
    import("../client/local.ts"),
    import("../client/api.ts"),
    import("../model/target.ts"),
    import("../process/server-control.ts"),
  ]);
  return { ...reply, Session: sessions.Session, ensureServer: local.ensureServer, resolveApiKey: local.resolveApiKey, stopServer: local.stopServer, loadHealth: api.loadHealth, requestSampling: target.requestSampling, readServerState: control.readServerState };
}
export const loadChatDeps = () => (chatDeps ??= importChatDeps());

const INPUT_PLACEHOLDER = "message the model · Enter sends";

/** Reply text for the Markdown renderer: tool calls (<tool_call>…</tool_call>) become labelled blocks. */
export function renderToolCalls(content: string): string {
  return content.replace(/<tool_call>\s*([\s\S]*?)(\s*<\/tool_call>|$)/g, (_m, body: string, end: string) => {
    const fence = "```";
    return `\n**⚙ tool call**\n\n${fence}tool-call\n${body.trim()}\n${end ? fence : ""}`;
  });
}

/** "thinking · 312 chars (t shows it)" when folded, the text itself when shown. */
export function renderReasoning(reasoning: string, shown: boolean, streaming: boolean): string {
  if (!reasoning) return "";
  if (shown) return reasoning.trim();
  return `▸ thinking${streaming ? "…" : ""} · ${reasoning.length} chars (t or :think on shows it)`;
}

function createMarkdownStyle(theme: Theme, renderer: AppServices["renderer"]): SyntaxStyle {
  const c = (v?: string) => (theme.color ? v : RGBA.defaultForeground());
  return SyntaxStyle.fromStyles(
    {
      default: { fg: c(theme.text) },
      "markup.heading": { fg: c(theme.accent), bold: true },
      "markup.strong": { bold: true },
      "markup.italic": { italic: true },
      "markup.strikethrough": { dim: true },
      "markup.raw": { fg: c(theme.code) },
      "markup.raw.block": { fg: c(theme.code) },
      "markup.quote": { fg: c(theme.dim), italic: true },
      "markup.list": { fg: c(theme.accent) },
      "markup.link": { fg: c(theme.accent), underline: true },
      "markup.link.label": { fg: c(theme.accent) },
      "markup.link.url": { fg: c(theme.dim), underline: true },
      keyword: { fg: c(theme.accent), bold: true },
      string: { fg: c(theme.ok) },
      comment: { fg: c(theme.dim), italic: true },
      number: { fg: c(theme.warn) },
      function: { fg: c(theme.code) },
      conceal: { fg: c(theme.dim) },
    },
    renderer.nativeScene,
  );
}

interface ReplyBlock {
  box: BoxRenderable;
  reasoningText: TextRenderable;
  markdown: MarkdownRenderable;
  statsText: TextRenderable;
  reasoning: string;
  content: string;
  streaming: boolean;
}

export class ChatView implements View {
  readonly name = "chat" as const;
  readonly root: BoxRenderable;
  readonly help = [
    "Enter  send        Esc  stop a reply / leave the input    i  back to input",
    "t (Ctrl-T typing)  fold / show thinking    PgUp PgDn j k g G  scroll",
    "typed: /new  /think on|off  /quit   (as in `flashchat chat`)",
  ];
  model?: string;
  backend?: string;
  private session?: Session;
  private readonly transcript: ScrollBoxRenderable;
  /** The input line: built just after the first frame (about a third of what building the chat costs); until then `standIn` shows its placeholder. */
  private input?: InputRenderable;
  private standIn?: TextRenderable;
  /** Before the input is built: whether it is to have the focus, and what was typed meanwhile. */
  private pendingFocus = false;
  private pendingText = "";
  private readonly inputRow: BoxRenderable;
  private readonly prompt: TextRenderable;
  private readonly replies: ReplyBlock[] = [];
  /** The Markdown colours, made for the first reply (and remade when the theme changes). */
  private markdownStyle?: SyntaxStyle;
  private controller?: AbortController;
  private showThinking: boolean;
  private baseUrl?: string;
  private nBlocks = 0;

  constructor(
    private readonly app: AppServices,
    /** --config FILE, passed on to a server the TUI starts. */
    private readonly configFile?: string,
  ) {
    const r = app.renderer;
    // SHOW_THINKING once the config is read (configLoaded): folded until then
    this.showThinking = false;
    this.root = new BoxRenderable(r, { id: "chat", flexDirection: "column", flexGrow: 1 });
    this.transcript = new ScrollBoxRenderable(r, {
      id: "chat-transcript",
      flexGrow: 1,
      stickyScroll: true,
      stickyStart: "bottom",
      contentOptions: { flexDirection: "column" },
      scrollbarOptions: { trackOptions: { foregroundColor: colourOf(app.theme, "border"), backgroundColor: app.theme.color ? "transparent" : RGBA.defaultBackground() } },
    });
    const row = (this.inputRow = new BoxRenderable(r, { id: "chat-input-row", height: 1, flexDirection: "row" }));
    this.prompt = new TextRenderable(r, { id: "chat-prompt", width: 2, height: 1, content: styled(paint(app.theme, "user", "> ")) });
    this.standIn = new TextRenderable(r, { id: "chat-input-stand-in", flexGrow: 1, height: 1, content: styled(paint(app.theme, "dim", INPUT_PLACEHOLDER)) });
    row.add(this.prompt);
    row.add(this.standIn);
    this.root.add(this.transcript);
    this.root.add(row);
    this.note("flashchat · type a message and press Enter · ? shows the keys");
  }

  /** Build the input line in place of its stand-in (the app calls this once the first frame is drawn). */
  buildInput(): InputRenderable {
    if (this.input) return this.input;
    const input = new InputRenderable(this.app.renderer, { id: "chat-input", flexGrow: 1, placeholder: INPUT_PLACEHOLDER, ...inputColours(this.app.theme) });
    input.on(InputRenderableEvents.ENTER, () => {
      const text = input.value;
      if (!text.trim() || this.streaming) return;
      input.value = "";
      void this.submit(text).catch((e) => this.app.notify((e as Error).message, "error"));
    });
    if (this.standIn) {
      this.inputRow.remove(this.standIn);
      this.standIn.destroyRecursively();
      this.standIn = undefined;
    }
    this.inputRow.add(input);
    this.input = input;
    if (this.pendingText) input.value = this.pendingText;
    this.pendingText = "";
    if (this.pendingFocus) input.focus();
    return input;
  }

  private get style(): SyntaxStyle {
    return (this.markdownStyle ??= createMarkdownStyle(this.app.theme, this.app.renderer));
  }

  /** The config has been read (after the first frame). */
  configLoaded(config: { showThinking: boolean }): void {
    if (config.showThinking !== this.showThinking) {
      this.showThinking = config.showThinking;
      for (const b of this.replies) this.drawReasoning(b);
    }
  }

  get streaming(): boolean {
    return this.controller !== undefined;
  }

  get inputFocused(): boolean {
    return this.input ? this.input.focused : this.pendingFocus;
  }

  focusInput(): void {
    if (this.input) this.input.focus();
    else this.pendingFocus = true;
  }

  blurInput(): void {
    if (this.input) this.input.blur();
    else this.pendingFocus = false;
  }

  shown(): void {
    this.focusInput();
  }

  hidden(): void {
    this.blurInput();
  }

  refresh(): void {
    if (this.input) Object.assign(this.input, inputColours(this.app.theme));
    if (this.standIn) this.standIn.content = styled(paint(this.app.theme, "dim", INPUT_PLACEHOLDER));
    this.prompt.content = styled(paint(this.app.theme, "user", "> "));
    if (this.markdownStyle) this.markdownStyle = createMarkdownStyle(this.app.theme, this.app.renderer);
    for (const b of this.replies) {
      b.markdown.syntaxStyle = this.style;
      b.markdown.fg = colourOf(this.app.theme, "text");
      this.drawReasoning(b);
    }
  }

  /** Keys while typing that are not text: scrolling and the thinking toggle. */
  inputKey(k: KeyEvent): boolean {
    // typed before the input is built (the first moments): kept for it
    if (!this.input && !k.ctrl && !k.meta && k.sequence.length === 1 && k.sequence >= " ") return (this.pendingText += k.sequence), true;
    if (k.name === "pageup") return this.transcript.scrollBy(-0.5, "viewport"), true;
    if (k.name === "pagedown") return this.transcript.scrollBy(0.5, "viewport"), true;
    if (k.ctrl && k.name === "t") return this.setThinking(!this.showThinking), true;
    return false;
  }

  key(k: KeyEvent): boolean {
    const ch = k.sequence;
    if (k.name === "return" || ch === "i") return this.focusInput(), true;
    if (ch === "t") return this.setThinking(!this.showThinking), true;
    if (k.name === "down" || ch === "j") return this.transcript.scrollBy(1), true;
    if (k.name === "up" || ch === "k") return this.transcript.scrollBy(-1), true;
    if (k.name === "pagedown") return this.transcript.scrollBy(0.5, "viewport"), true;
    if (k.name === "pageup") return this.transcript.scrollBy(-0.5, "viewport"), true;
    if (ch === "g" || k.name === "home") return this.transcript.scrollTo(0), true;
    if (ch === "G" || k.name === "end") return this.transcript.scrollTo(Number.POSITIVE_INFINITY), true;
    return false;
  }

  setThinking(on: boolean): void {
    this.showThinking = on;
    for (const b of this.replies) this.drawReasoning(b);
    this.app.notify(`thinking is ${on ? "shown" : "folded"}`);
  }

  stop(): void {
    this.controller?.abort();
  }

  /** Stop our background server; the next message starts it again with the settings as they are now. */
  async restartServer(): Promise<void> {
    if (this.streaming) return this.app.notify("a reply is streaming: Esc stops it first", "warn");
    const { stopServer } = await loadChatDeps();
    await this.app.configReady;
    const r = await stopServer(this.app.config);
    this.baseUrl = undefined;
    this.backend = undefined;
    this.app.notify(r.stopped ? `${r.message} · the next message starts it with the current settings` : r.message, r.stopped ? "ok" : "warn");
    this.app.statusChanged();
  }

  newSession(): void {
    if (this.streaming) return this.app.notify("a reply is streaming: Esc stops it first", "warn");
    if (this.session) this.note(`session ${this.session.id} saved`);
    this.session = undefined;
    this.clearTranscript();
    this.note("new session");
    this.app.tokens.contextUsed = 0;
    this.app.statusChanged();
  }

  /** Load a saved session into the pane; the next message continues it. */
  async resume(id: string): Promise<void> {
    if (this.streaming) return this.app.notify("a reply is streaming: Esc stops it first", "warn");
    const { Session, renderStats } = await loadChatDeps();
    await this.app.configReady;
    let opened: ReturnType<typeof Session.open>;
    try {
      opened = Session.open(this.app.config.paths, id);
    } catch (e) {
      if (isUserError(e)) return this.app.notify(e.message, "error");
      throw e;
    }
    this.session = opened.session;
    this.clearTranscript();
    this.note(`resumed ${this.session.id} · ${this.session.turns} turn${this.session.turns === 1 ? "" : "s"}`);
    for (const w of opened.warnings) this.note(`warning: ${w}`, "warn");
    for (const m of this.session.messages) {
      if (m.role === "user") this.addUser(m.content);
      else if (m.role === "system") this.note(`system prompt: ${m.content}`);
      else {
        // drawn the way a live reply is (OpenTUI's Markdown shows nothing for text it is given before its first frame)
        const b = this.addReply();
        b.reasoning = m.reasoning ?? "";
        b.content = m.content;
        b.markdown.content = renderToolCalls(m.content);
        const stats = m.stats ? renderStats(m.stats) : "";
        this.app.renderer.once("frame", () => this.finishBlock(b, stats, m.interrupted ? "[interrupted]" : undefined));
      }
    }
    this.focusInput();
  }

  private clearTranscript(): void {
    for (const child of this.transcript.getChildren()) {
      this.transcript.remove(child);
      child.destroyRecursively();
    }
    this.replies.length = 0;
  }

  private nextId(kind: string): string {
    return `chat-${kind}-${this.nBlocks++}`;
  }

  private note(text: string, level: "dim" | "warn" | "error" = "dim"): void {
    this.transcript.add(new TextRenderable(this.app.renderer, { id: this.nextId("note"), content: styled(paint(this.app.theme, level, text)) }));
  }

  private addUser(text: string): void {
    const t = new TextRenderable(this.app.renderer, { id: this.nextId("user"), content: styled(paint(this.app.theme, "user", `> ${text}`, { bold: true })), marginTop: 1 });
    this.transcript.add(t);
  }

  /** A reply's block: streaming (no `done`), or a finished one (a resumed session) drawn complete from the start. */
  private addReply(done?: { content: string; reasoning: string }): ReplyBlock {
    const r = this.app.renderer;
    const box = new BoxRenderable(r, { id: this.nextId("reply"), flexDirection: "column" });
    const reasoningText = new TextRenderable(r, { id: this.nextId("reasoning"), content: "", visible: false });
    const markdown = new MarkdownRenderable(r, {
      id: this.nextId("md"),
      content: done ? renderToolCalls(done.content) : "",
      syntaxStyle: this.style,
      streaming: !done,
      conceal: true,
      fg: colourOf(this.app.theme, "text"),
    });
    const statsText = new TextRenderable(r, { id: this.nextId("stats"), content: "", visible: false });
    box.add(reasoningText);
    box.add(markdown);
    box.add(statsText);
    this.transcript.add(box);
    const b: ReplyBlock = { box, reasoningText, markdown, statsText, reasoning: done?.reasoning ?? "", content: done?.content ?? "", streaming: !done };
    this.replies.push(b);
    return b;
  }

  private drawReasoning(b: ReplyBlock): void {
    const text = renderReasoning(b.reasoning, this.showThinking, b.streaming);
    b.reasoningText.visible = text !== "";
    b.reasoningText.content = styled(paint(this.app.theme, "dim", text));
  }

  private finishBlock(b: ReplyBlock, stats: string, flag?: string): void {
    if (b.streaming) {
      b.streaming = false;
      b.markdown.content = renderToolCalls(b.content);
      b.markdown.streaming = false;
    }
    this.drawReasoning(b);
    const line = [flag, stats].filter(Boolean).join(" · ");
    b.statsText.visible = line !== "";
    b.statsText.content = styled(paint(this.app.theme, flag ? "warn" : "dim", line));
  }

  /** Make sure a server runs: a running one is used; otherwise the TUI steps aside while setup and start-up talk. */
  private async connect(): Promise<string> {
    const { readServerState, ensureServer, resolveApiKey, loadHealth } = await loadChatDeps();
    const config = this.app.config;
    const state = await readServerState(config);
    const opts = { apiKey: resolveApiKey(config) };
    let server: Awaited<ReturnType<typeof ensureServer>>;
    if (state.running) server = await ensureServer(config, { ...opts, autoStart: false, say: (l) => this.app.notify(l) });
    else {
      const r = this.app.renderer;
      r.suspend();
      try {
        process.stderr.write("\nflashchat: starting the server for the TUI (it keeps running; `flashchat serve --stop` stops it)\n");
        server = await ensureServer(config, { ...opts, configFile: this.configFile, prepare: async () => (await import("../setup/index.ts")).ensureReady(config, {}) });
      } finally {
        r.resume();
      }
    }
    this.baseUrl = server.client.url;
    this.model = server.model;
    const health = await loadHealth(this.baseUrl);
    const engine = health?.engine as { backend?: string; kernels?: string; context?: number } | undefined;
    if (engine?.backend) this.backend = backendLabel(engine);
    const ctx = typeof health?.context_length === "number" ? health.context_length : engine?.context;
    if (ctx) this.app.tokens.contextSize = ctx;
    this.app.statusChanged();
    return this.baseUrl;
  }

  private async submit(text: string): Promise<void> {
    const t = text.trim();
    if (t === "/new") return this.newSession();
    if (t === "/quit" || t === "/q" || t === "/exit") return void (this.app as { quit?: () => Promise<void> }).quit?.();
    if (t.startsWith("/think")) {
      const v = t.split(/\s+/)[1];
      return this.setThinking(v === undefined ? !this.showThinking : v === "on");
    }
    await this.turn(text);
  }

  /** One exchange (lib/chat/reply.ts, as `flashchat chat` has it): the message is saved once the server takes it; the reply is journalled. */
  async turn(text: string): Promise<void> {
    this.addUser(text);
    const controller = new AbortController();
    this.controller = controller;
    this.app.statusChanged();
    const block = this.addReply();
    try {
      const d = await loadChatDeps();
      await this.app.configReady;
      let baseUrl = this.baseUrl;
      if (!baseUrl) {
        try {
          baseUrl = await this.connect();
        } catch (e) {
          this.finishBlock(block, "", `cannot reach the server: ${(e as Error).message}`);
          return;
        }
      }
      const session = (this.session ??= d.Session.create(this.app.config.paths.sessionsDir, { model: this.model }));
      const reply = await d.streamSessionReply({
        session,
        pending: { role: "user", content: text },
        request: {
          baseUrl,
          model: this.model,
          maxTokens: this.app.config.maxTokens,
          ...d.requestSampling(this.app.config),
          signal: controller.signal,
          apiKey: d.resolveApiKey(this.app.config),
        },
        onText: (kind, t) => {
          if (kind === "reasoning") {
            block.reasoning += t;
            this.drawReasoning(block);
          } else {
            block.content += t;
            block.markdown.content = renderToolCalls(block.content);
          }
        },
      });
      const { outcome, failure, stats } = reply;
      if (outcome === "server-gone") this.baseUrl = undefined;
      if (!reply.saved) return this.finishBlock(block, "", failure);
      this.app.tokens.completion += stats.completion_tokens ?? 0;
      this.app.tokens.prompt += stats.prompt_tokens ?? 0;
      if (stats.prompt_tokens !== undefined) this.app.tokens.contextUsed = stats.prompt_tokens + (stats.completion_tokens ?? 0);
      if (outcome === "interrupted") this.finishBlock(block, d.renderStats(stats), "[stopped · the session keeps what arrived]");
      else if (outcome === "server-gone") this.finishBlock(block, "", `reply cut off: ${failure} · send again to reconnect`);
      else if (outcome === "refused") this.finishBlock(block, "", failure);
      else this.finishBlock(block, d.renderStats(stats));
    } finally {
      this.controller = undefined;
      this.app.statusChanged();
    }
  }

}
