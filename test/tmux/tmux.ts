// Drive a program in a real terminal: a tmux session on a private socket (send-keys, capture-pane).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";

export const hasTmux = Bun.spawnSync(["sh", "-c", "command -v tmux"]).exitCode === 0;

/** The checkout a terminal test runs flashchat from. */
export const root = join(import.meta.dir, "../..");

/** A throwaway HOME for a terminal test: XDG dirs inside (c/, d/, x/), a terminal's PATH and TERM, plus `extra`. */
export function createTerminalHome(prefix: string, extra: Record<string, string> = {}) {
  const home = mkdtempSync(join(tmpdir(), prefix));
  const env: Record<string, string> = {
    HOME: home,
    XDG_CONFIG_HOME: join(home, "c"),
    XDG_DATA_HOME: join(home, "d"),
    XDG_CACHE_HOME: join(home, "x"),
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    TERM: "xterm-256color",
    ...extra,
  };
  return { home, env, sessionsDir: join(home, "c/flashchat/sessions"), remove: () => rmSync(home, { recursive: true, force: true }) };
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

export class Tmux {
  readonly socket = `fc-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  private readonly session = "t";

  /** Start `argv` in a cols x rows terminal with exactly `env` (plus PATH/TERM), from `cwd`. */
  constructor(
    readonly dir: string,
    argv: string[],
    env: Record<string, string>,
    opts: { cwd: string; cols?: number; rows?: number },
  ) {
    const script = join(dir, `run-${this.socket}.sh`);
    const lines = ["#!/bin/sh", "unset CI", ...Object.entries(env).map(([k, v]) => `export ${k}=${q(v)}`), `cd ${q(opts.cwd)}`, `${argv.map(q).join(" ")}`, `echo "[exited $?]"`, "sleep 600"];
    writeFileSync(script, `${lines.join("\n")}\n`, { mode: 0o755 });
    this.tmux("new-session", "-d", "-s", this.session, "-x", String(opts.cols ?? 80), "-y", String(opts.rows ?? 24), script);
  }

  private tmux(...args: string[]): string {
    const r = Bun.spawnSync(["tmux", "-L", this.socket, "-f", "/dev/null", ...args], { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`tmux ${args[0]} failed: ${r.stderr.toString()}`);
    return r.stdout.toString();
  }

  /** Keys as tmux names them ("Enter", "C-c", "Up") or literal text with {literal: true}. */
  send(...keys: string[]): void {
    this.tmux("send-keys", "-t", this.session, ...keys);
  }

  type(text: string): void {
    this.tmux("send-keys", "-t", this.session, "-l", text);
  }

  /** The visible screen, trailing spaces trimmed. */
  screen(): string {
    return this.tmux("capture-pane", "-t", this.session, "-p")
      .split("\n")
      .map((l) => l.trimEnd())
      .join("\n")
      .replace(/\n+$/, "\n");
  }

  /** Paste text the way a terminal does (bracketed paste when the program asked for it). */
  paste(text: string): void {
    this.tmux("set-buffer", "-b", "p", text);
    this.tmux("paste-buffer", "-p", "-b", "p", "-t", this.session);
  }

  /** The visible screen with its colour and style escape sequences. */
  styledScreen(): string {
    return this.tmux("capture-pane", "-t", this.session, "-p", "-e");
  }

  /** The screen plus scrollback. */
  history(): string {
    return this.tmux("capture-pane", "-t", this.session, "-p", "-S", "-1000", "-J");
  }

  /** Wait until the screen (or scrollback) matches; throws with the screen on timeout. */
  async waitFor(what: string | RegExp, timeoutMs = 20_000, where: "screen" | "history" = "history"): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = where === "screen" ? this.screen() : this.history();
      if (typeof what === "string" ? s.includes(what) : what.test(s)) return s;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; screen:\n${this.screen()}`);
      await Bun.sleep(50);
    }
  }

  /** Set a server-wide tmux option: window-style "bg=#ffffff" is the background tmux reports to OSC 11 queries. */
  option(name: string, value: string): void {
    this.tmux("set-option", "-g", name, value);
  }

  /** A mouse click (press and release, SGR encoding as a terminal sends it) at column x, row y (1-based). */
  click(x: number, y: number): void {
    this.type(`\x1b[<0;${x};${y}M\x1b[<0;${x};${y}m`);
  }

  /** A mouse wheel notch up or down at column x, row y (1-based). */
  wheel(direction: "up" | "down", x: number, y: number): void {
    this.type(`\x1b[<${direction === "up" ? 64 : 65};${x};${y}M`);
  }

  /** Resize the terminal (the program gets SIGWINCH). */
  resize(cols: number, rows: number): void {
    this.tmux("resize-window", "-t", this.session, "-x", String(cols), "-y", String(rows));
  }

  /** A tmux format about the pane: "#{alternate_on}" (1 while the program uses the alternate screen), "#{cursor_flag}". */
  display(format: string): string {
    return this.tmux("display-message", "-p", "-t", this.session, format).trim();
  }

  kill(): void {
    Bun.spawnSync(["tmux", "-L", this.socket, "kill-server"], { stderr: "ignore" });
  }
}
