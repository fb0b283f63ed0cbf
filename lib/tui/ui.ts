// What every TUI view shares: the View contract, the app services a view may call, and styled-text helpers
// that follow the theme (no colour codes at all with the plain theme).
import { type BoxRenderable, type CliRenderer, type KeyEvent, parseColor, RGBA, StyledText, type TextChunk, bold as boldChunk, fg, reverse } from "@opentui/core";
import type { ResolvedConfig } from "../config/schema.ts";
import type { Theme } from "./theme.ts";

export type ViewName = "chat" | "log" | "sessions" | "settings" | "status";

export interface View {
  readonly name: ViewName;
  /** The view's box: the app shows one at a time in its main area. */
  readonly root: BoxRenderable;
  /** Lines for the help overlay: "key   what it does". */
  readonly help: readonly string[];
  /** Became visible / hidden. */
  shown(): void;
  hidden(): void;
  /** A key in navigation mode (no prompt open); true when it was the view's. */
  key(k: KeyEvent): boolean;
  /** `/` in this view: filter or find (undefined: the view has nothing to search). */
  search?(query: string): void;
  /** The terminal was resized or the theme changed: redraw what the view draws itself. */
  refresh(): void;
}

/** A one-line question in the footer: command line, search, rename, a setting's new value, a confirmation. */
export interface PromptSpec {
  label: string;
  value?: string;
  /** Each keystroke: a status line to show under it (validation as typed), or undefined. */
  onInput?: (value: string) => { ok: boolean; message: string } | undefined;
  onSubmit: (value: string) => void | Promise<void>;
  onCancel?: () => void;
}

/** What the app offers its views. */
export interface AppServices {
  readonly renderer: CliRenderer;
  readonly theme: Theme;
  /** The config (read after the first frame: whatever runs before configReady must not touch it). */
  config: ResolvedConfig;
  readonly configReady: Promise<void>;
  /** Reload settings from disk (after a save): every view sees the new config. */
  reloadConfig(): Promise<void>;
  /** A line in the footer (level picks the colour). */
  notify(message: string, level?: "info" | "ok" | "warn" | "error"): void;
  prompt(spec: PromptSpec): void;
  /** Ask y/N in the footer. */
  confirm(question: string, onYes: () => void): void;
  switchTo(view: ViewName): void;
  /** Resume this session in the chat view. */
  resumeSession(id: string): void;
  /** The status line changed (server state, tokens): redraw it. */
  statusChanged(): void;
  /** Tokens generated and read in this TUI run. */
  tokens: { prompt: number; completion: number; contextUsed?: number; contextSize?: number };
}

export type Role = "text" | "dim" | "accent" | "user" | "ok" | "warn" | "error" | "code" | "border";

/** A role's colour; with the plain theme the terminal's own default foreground (no colour code: SGR 39). */
export const colourOf = (theme: Theme, role: Role): RGBA | string => (theme.color ? theme[role]! : RGBA.defaultForeground());

/** Colours of an input line: the theme's, or the terminal's defaults with the plain theme. */
export function inputColours(theme: Theme) {
  const text = colourOf(theme, "text");
  const bg = theme.color ? "transparent" : RGBA.defaultBackground();
  return { textColor: text, focusedTextColor: text, placeholderColor: colourOf(theme, "dim"), backgroundColor: bg, focusedBackgroundColor: bg };
}

/** A piece of text in a role's colour (the terminal's default colour with the plain theme). */
export function paint(theme: Theme, role: Role, text: string, opts: { bold?: boolean } = {}): TextChunk {
  const colour = colourOf(theme, role);
  const chunk: TextChunk = typeof colour === "string" ? fg(colour)(text) : { __isChunk: true, text, fg: colour, bg: RGBA.defaultBackground() };
  return opts.bold ? boldChunk(chunk) : chunk;
}

/** A selected row: the theme's selection colours, or reverse video with the plain theme. */
export function paintSelected(theme: Theme, text: string): TextChunk {
  if (!theme.color) return reverse(text);
  return { __isChunk: true, text, fg: parseColor(theme.selectedFg!), bg: parseColor(theme.selectedBg!) };
}

export const styled = (...chunks: TextChunk[]) => new StyledText(chunks);

/** Cut a line to `width` columns with … (code units; our text is mostly ASCII). */
export function cut(s: string, width: number): string {
  if (width <= 0) return "";
  return s.length > width ? `${s.slice(0, Math.max(0, width - 1))}…` : s;
}

/** Move a selection by `delta` within n items (clamped). */
export const clampIndex = (i: number, n: number) => (n === 0 ? 0 : Math.max(0, Math.min(n - 1, i)));

/** The list keys every list view shares: j/k/arrows, g/G, PgUp/PgDn, Home/End. Returns the new index or undefined. */
export function moveSelection(k: KeyEvent, index: number, n: number, page: number): number | undefined {
  const name = k.name;
  if (name === "down" || (name === "j" && !k.ctrl)) return clampIndex(index + 1, n);
  if (name === "up" || (name === "k" && !k.ctrl)) return clampIndex(index - 1, n);
  if (name === "pagedown" || (k.ctrl && name === "d")) return clampIndex(index + page, n);
  if (name === "pageup" || (k.ctrl && name === "u")) return clampIndex(index - page, n);
  if (name === "home" || (name === "g" && !k.shift && k.sequence === "g")) return 0;
  if (name === "end" || k.sequence === "G") return clampIndex(n - 1, n);
  return undefined;
}

/** "cpu/avx512vnni": the engine's backend and, for the CPU, its kernel level (a GPU backend's kernels are its name). */
export function backendLabel(engine: { backend?: string; kernels?: string }): string | undefined {
  if (!engine.backend) return undefined;
  return engine.kernels && engine.kernels !== engine.backend ? `${engine.backend}/${engine.kernels}` : engine.backend;
}
