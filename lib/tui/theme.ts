// The TUI's colours: a dark and a light palette, chosen from the terminal's background (OSC 11 answer via
// OpenTUI, else COLORFGBG), and a plain one (no colour at all) for NO_COLOR / COLOR_OUTPUT=0.

export type ThemeName = "dark" | "light" | "plain";

export interface Theme {
  name: ThemeName;
  /** false: no colour codes at all (attributes such as bold and reverse remain). */
  color: boolean;
  text?: string;
  dim?: string;
  accent?: string;
  user?: string;
  ok?: string;
  warn?: string;
  error?: string;
  border?: string;
  selectedBg?: string;
  selectedFg?: string;
  code?: string;
}

const DARK: Theme = {
  name: "dark",
  color: true,
  text: "#d8dee9",
  dim: "#7b8496",
  accent: "#88c0d0",
  user: "#a3be8c",
  ok: "#a3be8c",
  warn: "#ebcb8b",
  error: "#bf616a",
  border: "#4c566a",
  selectedBg: "#3b4252",
  selectedFg: "#eceff4",
  code: "#b48ead",
};

const LIGHT: Theme = {
  name: "light",
  color: true,
  text: "#1f2328",
  dim: "#6e7781",
  accent: "#0550ae",
  user: "#116329",
  ok: "#116329",
  warn: "#7d4e00",
  error: "#a40e26",
  border: "#8c959f",
  selectedBg: "#ddf4ff",
  selectedFg: "#0a3069",
  code: "#8250df",
};

const PLAIN: Theme = { name: "plain", color: false };

/**
 * The terminal's background from COLORFGBG ("15;0": light text on black), the convention of rxvt, Konsole and
 * others; undefined when it is not set or says nothing.
 */
export function detectBackgroundFromEnv(env: Record<string, string | undefined>): "dark" | "light" | undefined {
  const v = env.COLORFGBG;
  if (!v) return undefined;
  const bg = Number(v.split(";").at(-1));
  if (!Number.isInteger(bg)) return undefined;
  // 0-6 and 8 are the dark ANSI colours; 7 and 9-15 light
  return bg === 7 || (bg >= 9 && bg <= 15) ? "light" : "dark";
}

/** Light or dark from a background colour "#rrggbb" (relative luminance above or below half); undefined if not one. */
export function modeOfBackground(hex: string | null | undefined): "dark" | "light" | undefined {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex ?? "");
  if (!m) return undefined;
  const [r, g, b] = [m[1]!, m[2]!, m[3]!].map((c) => Number.parseInt(c, 16) / 255) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.5 ? "light" : "dark";
}

/**
 * The theme to draw with. `color` is COLOR_OUTPUT with NO_COLOR applied (ResolvedConfig.colorOutput);
 * `terminalMode` is what the terminal answered about its background (null: no answer); `forced` is the user's choice.
 */
export function resolveTheme(opts: { color: boolean; terminalMode?: "dark" | "light" | null; forced?: ThemeName; env?: Record<string, string | undefined> }): Theme {
  const env = opts.env ?? process.env;
  if (!opts.color || env.NO_COLOR) return PLAIN;
  if (opts.forced === "plain") return PLAIN;
  const mode = opts.forced ?? opts.terminalMode ?? detectBackgroundFromEnv(env) ?? "dark";
  return mode === "light" ? LIGHT : DARK;
}
