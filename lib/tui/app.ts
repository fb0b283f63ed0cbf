// The TUI's frame: status line, view tabs, the active view, the footer (messages, one-line prompts, key hints),
// the help overlay, and the keys that work everywhere (Tab, 1-5, ?, :, /, q, Ctrl-C).
import { BoxRenderable, type CliRenderer, InputRenderable, InputRenderableEvents, type KeyEvent, RGBA, TextRenderable } from "@opentui/core";
import type { ResolvedConfig } from "../config/schema.ts";
import type { ServerState } from "../process/server-control.ts";
import { ChatView, loadChatDeps } from "./chat-view.ts";
import type { SettingsView } from "./settings-view.ts";
import { modeOfBackground, resolveTheme, type Theme, type ThemeName } from "./theme.ts";
import { type AppServices, colourOf, cut, inputColours, paint, type PromptSpec, styled, type View, type ViewName } from "./ui.ts";

export const VIEW_ORDER: readonly ViewName[] = ["chat", "log", "sessions", "settings", "status"];
export const VIEW_TITLES: Record<ViewName, string> = { chat: "Chat", log: "Log", sessions: "Sessions", settings: "Settings", status: "Status" };

/** The views other than the chat: built after the first frame is drawn (the start does not wait for their code). */
async function importOtherViews() {
  const [{ LogView }, { SessionsView }, { SettingsView }, { StatusView }] = await Promise.all([
    import("./log-view.ts"),
    import("./sessions-view.ts"),
    import("./settings-view.ts"),
    import("./status-view.ts"),
  ]);
  return (app: AppServices): View[] => [new LogView(app), new SessionsView(app), new SettingsView(app), new StatusView(app)];
}

const GLOBAL_HELP = [
  "Tab Shift-Tab  next / previous view   1-5  Chat Log Sessions Settings Status",
  "?  this help    :  command line    /  search the view    q  quit",
  "Esc     stop a reply · leave the chat input · close a prompt",
  "Ctrl-C  stop a reply, else quit   mouse  click a tab or row, wheel scrolls",
];

const COMMAND_HELP = [
  ":chat :log :sessions :settings :status  views   :new  new chat   :q  quit",
  ":think on|off    :theme dark|light|plain    :set KEY VALUE (saved)",
  ":restart  stop the server; the next message starts it with new settings",
];

/** The help overlay's background: opaque over the view under it. */
const helpBackground = (theme: Theme) => (theme.color ? (theme.name === "light" ? "#ffffff" : "#1e222a") : RGBA.defaultBackground());

export interface TuiAppOptions {
  configFile?: string;
  /** Open on this session (chat --resume style). */
  resume?: string;
}

export class TuiApp implements AppServices {
  readonly tokens: AppServices["tokens"] = { prompt: 0, completion: 0 };
  server?: ServerState;
  private readonly views = new Map<ViewName, View>();
  private otherViews?: Promise<void>;
  private active: View;
  private readonly header: TextRenderable;
  private readonly tabs: TextRenderable;
  private readonly main: BoxRenderable;
  private readonly message: TextRenderable;
  private readonly root: BoxRenderable;
  /** The footer's one-line prompt, built when first needed (the first frame does without it). */
  private promptParts?: { row: BoxRenderable; label: TextRenderable; input: InputRenderable };
  private readonly hints: TextRenderable;
  /** The help overlay, built when first opened. */
  private help?: { box: BoxRenderable; text: TextRenderable };
  private promptSpec?: PromptSpec;
  private confirmAction?: () => void;
  private poll?: ReturnType<typeof setInterval>;
  private done!: () => void;
  readonly finished = new Promise<void>((r) => (this.done = r));
  private quitting = false;
  /** The config: read after the first frame is drawn (runTui calls configLoaded). */
  private loadedConfig?: ResolvedConfig;
  private configArrived!: () => void;
  /** Resolves when the config has been read: whatever needs it (the other views, the chat's client) waits for it. */
  readonly configReady = new Promise<void>((r) => (this.configArrived = r));

  theme: Theme;
  /** :theme for this run (over TUI_THEME). */
  private themeChoice?: ThemeName;
  /** What the terminal said about its background (OpenTUI asks it: OSC 11); null: no answer (yet). */
  private terminalMode: "dark" | "light" | null;

  constructor(
    readonly renderer: CliRenderer,
    private readonly opts: TuiAppOptions = {},
  ) {
    this.terminalMode = renderer.themeMode;
    this.theme = this.pickTheme();
    const root = (this.root = new BoxRenderable(renderer, { id: "root", flexDirection: "column", width: "100%", height: "100%" }));
    this.header = new TextRenderable(renderer, { id: "header", height: 1, content: "" });
    this.tabs = new TextRenderable(renderer, { id: "tabs", height: 1, content: "" });
    this.main = new BoxRenderable(renderer, { id: "main", flexGrow: 1, flexDirection: "column" });
    this.message = new TextRenderable(renderer, { id: "message", height: 1, content: "" });
    this.hints = new TextRenderable(renderer, { id: "hints", height: 1, content: "" });
    root.add(this.header);
    root.add(this.tabs);
    root.add(this.main);
    root.add(this.message);
    root.add(this.hints);
    renderer.root.add(root);

    const chat = new ChatView(this, opts.configFile);
    this.addView(chat);
    this.active = chat;

    renderer.keyInput.on("keypress", (k: KeyEvent) => this.onKey(k));
    // mouse (where the terminal reports it): a click on a tab opens its view; lists and the chat scroll with the wheel
    this.tabs.onMouseDown = (e) => {
      const view = this.tabAt(e.x - this.tabs.screenX);
      if (view && !this.promptSpec) this.switchTo(view);
    };
    renderer.on("resize", () => this.refreshAll());
  }

  get config(): ResolvedConfig {
    if (!this.loadedConfig) throw new Error("the config is not read yet (wait for configReady)");
    return this.loadedConfig;
  }

  set config(config: ResolvedConfig) {
    this.loadedConfig = config;
  }

  /** The config has been read (after the first frame): fill in what depends on it; warnings go to the footer. */
  configLoaded(config: ResolvedConfig, warnings: readonly string[] = []): void {
    this.config = config;
    this.chat.configLoaded(config);
    const theme = this.pickTheme();
    if (theme.name !== this.theme.name) this.applyTheme(theme);
    else this.statusChanged();
    if (warnings.length) this.notify(warnings.length === 1 ? `config: ${warnings[0]}` : `config: ${warnings.length} warnings (shown on quit): ${warnings[0]}`, "warn");
    this.configArrived();
  }

  get chat(): ChatView {
    return this.views.get("chat") as ChatView;
  }

  private addView(v: View): void {
    v.root.visible = false;
    this.main.add(v.root);
    this.views.set(v.name, v);
  }

  /** Build the other views (once, when the config is read); a key that wants one before then waits for this. */
  private loadViews(): Promise<void> {
    return (this.otherViews ??= Promise.all([importOtherViews(), this.configReady]).then(([build]) => {
      for (const v of build(this)) this.addView(v);
    }));
  }

  async start(): Promise<void> {
    this.switchTo("chat");
    if (this.opts.resume) {
      const id = this.opts.resume;
      void this.configReady.then(() => this.resumeSession(id));
    }
    this.renderHints();
    this.statusChanged();
    // the first frame waits for none of this: the other views, the chat's client and the server's state come after it
    this.renderer.once("frame", () => {
      if (this.quitting) return;
      this.chat.buildInput();
      void this.detectBackground();
      void this.loadViews().then(() => loadChatDeps());
      void this.pollServer();
      this.poll = setInterval(() => void this.pollServer(), 2000);
    });
  }

  private async pollServer(): Promise<void> {
    await this.configReady;
    if (this.quitting) return;
    const { readServerState } = await loadChatDeps();
    this.server = await readServerState(this.config);
    this.statusChanged();
  }

  // ---- AppServices ----

  async reloadConfig(): Promise<void> {
    const { loadFlashchatConfig } = await import("../config/index.ts");
    this.config = await loadFlashchatConfig({ configFile: this.opts.configFile, createUserConfig: false, warn: (m) => this.notify(`config: ${m}`, "warn") });
    const theme = this.pickTheme();
    if (theme.name !== this.theme.name) this.applyTheme(theme);
    else this.refreshAll();
  }

  notify(text: string, level: "info" | "ok" | "warn" | "error" = "info"): void {
    const role = level === "info" ? "dim" : level;
    this.message.content = styled(paint(this.theme, role, cut(text, this.renderer.width)));
  }

  prompt(spec: PromptSpec): void {
    this.confirmAction = undefined;
    this.promptSpec = spec;
    const p = this.promptRow();
    p.label.content = styled(paint(this.theme, "accent", spec.label));
    p.label.width = spec.label.length;
    p.input.value = spec.value ?? "";
    p.row.visible = true;
    p.input.focus();
    const check = spec.onInput?.(p.input.value);
    if (check) this.notify(check.message, check.ok ? "ok" : "error");
    this.renderHints();
  }

  /** The footer's prompt row (label and input), above the key hints. */
  private promptRow(): NonNullable<TuiApp["promptParts"]> {
    if (this.promptParts) return this.promptParts;
    const r = this.renderer;
    const row = new BoxRenderable(r, { id: "prompt-row", height: 1, flexDirection: "row", visible: false });
    const label = new TextRenderable(r, { id: "prompt-label", height: 1, content: "" });
    const input = new InputRenderable(r, { id: "prompt-input", flexGrow: 1, value: "", ...inputColours(this.theme) });
    row.add(label);
    row.add(input);
    this.root.insertBefore(row, this.hints);
    input.on(InputRenderableEvents.INPUT, (value: string) => {
      const check = this.promptSpec?.onInput?.(value);
      if (check) this.notify(check.message, check.ok ? "ok" : "error");
    });
    return (this.promptParts = { row, label, input });
  }

  private closePrompt(): void {
    this.promptSpec = undefined;
    if (this.promptParts) {
      this.promptParts.row.visible = false;
      this.promptParts.input.blur();
    }
    if (this.active === this.chat) this.chat.focusInput();
    this.renderHints();
  }

  confirm(question: string, onYes: () => void): void {
    this.confirmAction = onYes;
    this.notify(`${question} [y/N]`, "warn");
  }

  switchTo(name: ViewName): void {
    const next = this.views.get(name);
    if (!next) return void this.loadViews().then(() => this.switchTo(name));
    if (next !== this.active) {
      this.active.root.visible = false;
      this.active.hidden();
    }
    this.active = next;
    next.root.visible = true;
    next.shown();
    this.renderTabs();
    this.renderHints();
  }

  resumeSession(id: string): void {
    this.switchTo("chat");
    void this.chat.resume(id);
  }

  statusChanged(): void {
    const s = this.server;
    const model = s?.model ?? this.chat.model ?? this.loadedConfig?.modelRepo ?? "…";
    const server = !s ? "server …" : s.running ? `server :${s.port} ${s.healthy ? "ok" : (s.status ?? "not answering")}` : `server off (:${s.port})`;
    const parts = ["flashchat", ...(this.chat.streaming ? ["replying…"] : []), model, server];
    if (this.chat.backend) parts.push(this.chat.backend);
    const t = this.tokens;
    if (t.contextSize) parts.push(`ctx ${t.contextUsed ?? 0}/${t.contextSize}`);
    parts.push(`${t.completion} tok generated`);
    this.header.content = styled(paint(this.theme, "accent", cut(parts.join(" · "), this.renderer.width), { bold: true }));
  }

  // ---- drawing ----

  /** A click on the tabs row: the view whose label is under column `x` (0-based), if any. */
  private tabAt(x: number): ViewName | undefined {
    let at = 0;
    for (const [i, name] of VIEW_ORDER.entries()) {
      const width = ` ${i + 1} ${VIEW_TITLES[name]} `.length; // "[1 Chat]" when active: the same width
      if (x >= at && x < at + width) return name;
      at += width + 1;
    }
    return undefined;
  }

  private renderTabs(): void {
    const chunks = VIEW_ORDER.flatMap((name, i) => {
      const label = ` ${i + 1} ${VIEW_TITLES[name]} `;
      return [name === this.active.name ? paint(this.theme, "accent", `[${label.trim()}]`, { bold: true }) : paint(this.theme, "dim", label), paint(this.theme, "dim", " ")];
    });
    this.tabs.content = styled(...chunks);
  }

  private renderHints(): void {
    let text: string;
    if (this.promptSpec) text = "Enter accepts · Esc cancels";
    else if (this.active === this.chat && this.chat.inputFocused) text = "Enter sends · Esc stops a reply / leaves the input · Tab views · ? help · Ctrl-C quits";
    else text = "j/k move · g/G ends · / search · : command · Tab views · ? help · q quit";
    this.hints.content = styled(paint(this.theme, "dim", cut(text, this.renderer.width)));
  }

  /**
   * :theme, else TUI_THEME, else the terminal's background (else COLORFGBG, else dark); plain without colour.
   * Before the config is read (the first frame): the terminal's background, colour unless NO_COLOR.
   */
  private pickTheme(): Theme {
    const c = this.loadedConfig;
    const setting = c?.tuiTheme ?? "auto";
    return resolveTheme({ color: c?.colorOutput ?? true, terminalMode: this.terminalMode, forced: this.themeChoice ?? (setting === "auto" ? undefined : setting) });
  }

  /**
   * Ask the terminal for its background colour when it has not said yet (OpenTUI hears of it when the terminal
   * reports a change; this asks, OSC 11, through tmux too): light or dark follows it unless a theme is chosen.
   */
  private async detectBackground(): Promise<void> {
    if (this.terminalMode !== null) return;
    try {
      const mode = modeOfBackground((await this.renderer.getPalette({ timeout: 1000, size: 16 })).defaultBackground);
      if (mode && this.terminalMode === null && !this.quitting) this.terminalThemeChanged(mode);
    } catch {
      // no answer, or the terminal is going away: the theme stays as it is
    }
  }

  /** The renderer's terminal set-up is done (the views were built meanwhile): take the background it learnt, if any. */
  terminalSetUp(): void {
    const mode = this.renderer.themeMode;
    if (mode !== null && mode !== this.terminalMode) this.terminalThemeChanged(mode);
  }

  /** The terminal answered (or changed) its background colour: follow it unless a theme is chosen. */
  terminalThemeChanged(mode: "dark" | "light"): void {
    this.terminalMode = mode;
    this.applyTheme(this.pickTheme());
  }

  /** Redraw everything in the new colours. */
  applyTheme(theme: Theme): void {
    this.theme = theme;
    if (this.help) {
      this.help.box.backgroundColor = helpBackground(theme);
      this.help.box.borderColor = colourOf(theme, "border");
    }
    if (this.promptParts) Object.assign(this.promptParts.input, inputColours(theme));
    this.refreshAll();
  }

  private refreshAll(): void {
    for (const v of this.views.values()) v.refresh();
    this.renderTabs();
    this.renderHints();
    this.statusChanged();
    if (this.help?.box.visible) this.showHelp();
  }

  private createHelp(): NonNullable<TuiApp["help"]> {
    const box = new BoxRenderable(this.renderer, {
      id: "help",
      position: "absolute",
      top: 2,
      left: 0,
      zIndex: 100,
      border: true,
      title: " keys · any key closes ",
      visible: false,
      shouldFill: true,
      backgroundColor: helpBackground(this.theme),
      borderColor: colourOf(this.theme, "border"),
    });
    const text = new TextRenderable(this.renderer, { id: "help-text", content: "" });
    box.add(text);
    this.renderer.root.add(box);
    return { box, text };
  }

  private showHelp(): void {
    const lines = ["flashchat keys", "", ...GLOBAL_HELP, "", `${VIEW_TITLES[this.active.name]} view`, ...this.active.help, "", "Commands", ...COMMAND_HELP];
    const w = Math.max(20, this.renderer.width);
    const help = (this.help ??= this.createHelp());
    help.text.content = styled(paint(this.theme, "text", lines.map((l) => cut(l, w - 2)).join("\n")));
    help.box.width = w;
    help.box.height = Math.min(lines.length + 2, Math.max(5, this.renderer.height - 3));
    help.box.visible = true;
  }

  // ---- keys ----

  private onKey(k: KeyEvent): void {
    const stop = () => k.preventDefault();
    if (this.help?.box.visible) {
      this.help.box.visible = false;
      return stop();
    }
    if (k.ctrl && k.name === "c") {
      stop();
      if (this.chat.streaming) return this.chat.stop();
      return void this.quit();
    }
    if (this.confirmAction) {
      const yes = k.name === "y";
      const action = this.confirmAction;
      this.confirmAction = undefined;
      this.notify(yes ? "" : "cancelled");
      if (yes) action();
      return stop();
    }
    if (this.promptSpec) {
      if (k.name === "escape") {
        stop();
        const spec = this.promptSpec;
        this.closePrompt();
        this.notify("");
        spec.onCancel?.();
        return;
      }
      if (k.name === "return" || k.name === "enter") {
        stop();
        const spec = this.promptSpec;
        const value = this.promptRow().input.value;
        this.closePrompt();
        void Promise.resolve(spec.onSubmit(value)).catch((e) => this.notify((e as Error).message, "error"));
        return;
      }
      return; // typing goes to the prompt
    }
    if (k.name === "tab") {
      stop();
      const i = VIEW_ORDER.indexOf(this.active.name);
      return this.switchTo(VIEW_ORDER[(i + (k.shift ? VIEW_ORDER.length - 1 : 1)) % VIEW_ORDER.length]!);
    }
    if (this.active === this.chat && this.chat.inputFocused) {
      if (k.name === "escape") {
        stop();
        if (this.chat.streaming) this.chat.stop();
        else {
          this.chat.blurInput();
          this.renderHints();
        }
        return;
      }
      if (this.chat.inputKey(k)) return stop();
      return; // typing goes to the chat input
    }
    // navigation mode
    const ch = k.sequence;
    if (ch === "?") {
      stop();
      return this.showHelp();
    }
    if (ch === ":") {
      stop();
      return this.prompt({ label: ":", onSubmit: (v) => this.command(v) });
    }
    if (ch === "/" && this.active.search) {
      stop();
      const view = this.active;
      return this.prompt({ label: "/", onInput: (v) => (view.search!(v), undefined), onSubmit: (v) => view.search!(v), onCancel: () => view.search!("") });
    }
    if (/^[1-5]$/.test(ch) && !k.ctrl && !k.meta) {
      stop();
      return this.switchTo(VIEW_ORDER[Number(ch) - 1]!);
    }
    if (ch === "q" && !k.ctrl) {
      stop();
      return void this.quit();
    }
    if (this.active.key(k)) {
      stop();
      this.renderHints();
    }
  }

  /** The `:` command line. */
  private async command(line: string): Promise<void> {
    const [cmd = "", ...args] = line.trim().split(/\s+/);
    const rest = line.trim().slice(cmd.length).trim();
    switch (cmd) {
      case "":
        return;
      case "q":
      case "quit":
      case "exit":
        return this.quit();
      case "help":
        return this.showHelp();
      case "chat":
      case "log":
      case "sessions":
      case "settings":
      case "status":
        return this.switchTo(cmd);
      case "new":
        this.switchTo("chat");
        return this.chat.newSession();
      case "restart":
        return this.chat.restartServer();
      case "think":
        if (args[0] !== "on" && args[0] !== "off") return this.notify("usage: :think on|off", "error");
        this.chat.setThinking(args[0] === "on");
        return this.notify(`thinking is ${args[0] === "on" ? "shown" : "folded"}`);
      case "theme": {
        const name = args[0];
        if (name !== "dark" && name !== "light" && name !== "plain") return this.notify("usage: :theme dark|light|plain", "error");
        this.themeChoice = name;
        this.applyTheme(this.pickTheme());
        return this.notify(`theme ${this.theme.name}`);
      }
      case "set": {
        const key = args[0];
        const value = rest.slice((key ?? "").length).trim();
        if (!key) return this.notify("usage: :set KEY VALUE", "error");
        await this.loadViews();
        return (this.views.get("settings") as SettingsView).save(key.toUpperCase(), value);
      }
      default:
        this.notify(`unknown command :${cmd} (:help lists them)`, "error");
    }
  }

  async quit(): Promise<void> {
    if (this.quitting) return;
    this.quitting = true;
    if (this.poll) clearInterval(this.poll);
    this.chat.stop();
    for (const v of this.views.values()) v.hidden();
    this.done();
  }
}
