// The TUI's parts that need no terminal: theme choice, tool calls and thinking as drawn, setting checks,
// session rename and search, the log tail.
import { describe, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { Session, listSessions } from "../../lib/chat/sessions.ts";
import { renderReasoning, renderToolCalls } from "../../lib/tui/chat-view.ts";
import { readLogTail } from "../../lib/tui/log-view.ts";
import { renameSession, searchSessions } from "../../lib/tui/sessions-view.ts";
import { checkSetting } from "../../lib/tui/settings-view.ts";
import { lazyDlopen, lazyStats } from "../../lib/tui/native-lib.ts";
import { renderLiveStatus } from "../../lib/tui/status-view.ts";
import { detectBackgroundFromEnv, modeOfBackground, resolveTheme } from "../../lib/tui/theme.ts";
import { backendLabel } from "../../lib/tui/ui.ts";

describe("theme", () => {
  test("COLORFGBG's background picks light or dark", () => {
    expect(detectBackgroundFromEnv({ COLORFGBG: "0;15" })).toBe("light");
    expect(detectBackgroundFromEnv({ COLORFGBG: "15;0" })).toBe("dark");
    expect(detectBackgroundFromEnv({ COLORFGBG: "15;default;0" })).toBe("dark");
    expect(detectBackgroundFromEnv({})).toBeUndefined();
  });

  test("a background colour the terminal reports is light or dark by its luminance", () => {
    expect(modeOfBackground("#ffffff")).toBe("light");
    expect(modeOfBackground("#fdf6e3")).toBe("light"); // solarized light
    expect(modeOfBackground("#002b36")).toBe("dark"); // solarized dark
    expect(modeOfBackground("#000000")).toBe("dark");
    expect(modeOfBackground(null)).toBeUndefined();
    expect(modeOfBackground("rgb:ffff/ffff/ffff")).toBeUndefined();
  });

  test("TUI_THEME (forced) wins over the terminal; NO_COLOR wins over it", () => {
    expect(resolveTheme({ color: true, terminalMode: "dark", forced: "light", env: {} }).name).toBe("light");
    expect(resolveTheme({ color: true, terminalMode: "light", forced: "dark", env: {} }).name).toBe("dark");
    expect(resolveTheme({ color: true, terminalMode: "dark", forced: "light", env: { NO_COLOR: "1" } }).name).toBe("plain");
  });

  test("the terminal's answer wins over COLORFGBG; NO_COLOR and COLOR_OUTPUT=0 give the plain theme", () => {
    expect(resolveTheme({ color: true, terminalMode: "light", env: { COLORFGBG: "15;0" } }).name).toBe("light");
    expect(resolveTheme({ color: true, terminalMode: null, env: { COLORFGBG: "0;15" } }).name).toBe("light");
    expect(resolveTheme({ color: true, terminalMode: null, env: {} }).name).toBe("dark");
    expect(resolveTheme({ color: true, terminalMode: "dark", env: { NO_COLOR: "1" } })).toEqual({ name: "plain", color: false });
    expect(resolveTheme({ color: false, terminalMode: "dark", env: {} })).toEqual({ name: "plain", color: false });
  });
});

describe("chat drawing", () => {
  test("a tool call becomes a labelled block, also while it is still streaming", () => {
    const done = renderToolCalls('Let me look.\n<tool_call>\n{"name": "search", "arguments": {"q": "x"}}\n</tool_call>');
    expect(done).toContain("**⚙ tool call**");
    expect(done).toContain('```tool-call\n{"name": "search", "arguments": {"q": "x"}}\n```');
    expect(done).not.toContain("<tool_call>");
    const open = renderToolCalls('<tool_call>\n{"name": "sea');
    expect(open).toContain('```tool-call\n{"name": "sea');
    expect(renderToolCalls("plain text")).toBe("plain text");
  });

  test("thinking folds to one line or shows in full", () => {
    expect(renderReasoning("step one\nstep two", false, false)).toBe("▸ thinking · 17 chars (t or :think on shows it)");
    expect(renderReasoning("step one", false, true)).toContain("thinking…");
    expect(renderReasoning("step one\nstep two ", true, false)).toBe("step one\nstep two");
    expect(renderReasoning("", true, false)).toBe("");
  });
});

test("a setting is checked as typed with what it allows", () => {
  expect(checkSetting("TEMPERATURE", "0.3")).toEqual({ ok: true, message: "✓ TEMPERATURE accepts it · Enter saves" });
  expect(checkSetting("TEMPERATURE", "abc")).toEqual({ ok: false, message: "✗ TEMPERATURE expects a number from 0 to 2" });
  expect(checkSetting("QUANTIZATION", "3bit").message).toBe("✗ QUANTIZATION expects one of 4bit, 2bit");
});

describe("sessions", () => {
  test("rename moves the file, never over another session; search finds text past the preview", () => {
    const dir = mkdtempSync(join(tmpdir(), "fc-tui-sessions-"));
    try {
      const a = Session.create(dir, { now: 1_700_000_000_000 });
      a.append({ role: "user", content: "first question" });
      a.append({ role: "assistant", content: "an answer about zebras" });
      const b = Session.create(dir, { now: 1_700_000_000_001 });
      b.append({ role: "user", content: "other" });
      const before = readFileSync(a.path, "utf8");
      expect(() => renameSession({ sessionsDir: dir }, a.id, b.id)).toThrow(`a session named ${b.id} exists already`);
      expect(() => renameSession({ sessionsDir: dir }, a.id, "../escape")).toThrow("invalid session id");
      const r = renameSession({ sessionsDir: dir }, a.id, "zebra-talk");
      expect(r.id).toBe("zebra-talk");
      expect(readFileSync(join(dir, "zebra-talk.jsonl"), "utf8")).toBe(before);
      const list = listSessions({ sessionsDir: dir });
      expect(list.map((s) => s.id).sort()).toEqual([b.id, "zebra-talk"].sort());
      expect(searchSessions(list, "ZEBRAS").map((s) => s.id)).toEqual(["zebra-talk"]);
      expect(searchSessions(list, "").length).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test("the log tail: last lines, a cut first line dropped, none for a missing file", () => {
  const dir = mkdtempSync(join(tmpdir(), "fc-tui-log-"));
  try {
    const path = join(dir, "server.log");
    expect(readLogTail(path)).toEqual({ lines: [], sizeBytes: -1 });
    writeFileSync(path, "alpha line\nbeta line\n");
    expect(readLogTail(path).lines).toEqual(["alpha line", "beta line"]);
    appendFileSync(path, "gamma line\n");
    expect(readLogTail(path, 15).lines).toEqual(["gamma line"]); // "ine\ngamma line\n": the cut line goes
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the status panel: kernel level, experts read per token and page-cache hits from /health?stats=1; none from an engine that does not count them", () => {
  const tokens = { prompt: 9, completion: 12 };
  const engine = { backend: "cpu", kernels: "avx512vnni", threads: 2, context: 4096, kv_type: "f16", dense_bytes: 1 << 20, expert_io: "pread" };
  const rows = new Map(renderLiveStatus({ status: "ok", engine: { ...engine, stats: { prefill_tokens: 8, decode_passes: 12, expert_reads: 300, expert_bytes: 4000, expert_bytes_cached: 3000 } } }, tokens));
  expect(rows.get("backend")).toBe("cpu/avx512vnni · 2 threads");
  expect(rows.get("experts read")).toBe("15.0 per token (300 over 20 tokens, 4.0 KB, pread)");
  expect(rows.get("page cache")).toBe("75.0% of expert bytes were in the page cache when read");
  const old = new Map(renderLiveStatus({ status: "ok", engine: { ...engine, stats: { prefill_tokens: 8, decode_passes: 12, expert_bytes: 4000 } } }, tokens));
  expect(old.has("experts read")).toBe(false);
  expect(old.has("page cache")).toBe(false);
  expect(backendLabel({ backend: "metal", kernels: "metal" })).toBe("metal");
});

describe("OpenTUI's native library, bound lazily", () => {
  const ffi = require("bun:ffi") as typeof import("bun:ffi");
  test.skipIf(process.platform !== "linux")("functions are looked up at once and compiled on first call; a missing one fails at once", () => {
    const before = lazyStats.compiled;
    const lib = lazyDlopen(ffi, ffi.dlopen, "libc.so.6", { getpid: { args: [], returns: "i32" }, getppid: { args: [], returns: "i32" } })!;
    expect(Object.keys(lib.symbols).sort()).toEqual(["getpid", "getppid"]);
    expect("getpid" in lib.symbols).toBe(true);
    expect("open" in lib.symbols).toBe(false);
    expect(lazyStats.compiled).toBe(before); // nothing compiled yet
    expect((lib.symbols.getpid as () => number)()).toBe(process.pid);
    expect(lazyStats.compiled).toBe(before + 1);
    lib.close();
    expect(() => lazyDlopen(ffi, ffi.dlopen, "libc.so.6", { no_such_function_here: { args: [], returns: "void" } })).toThrow('symbol "no_such_function_here" not found');
  });

  test("importing OpenTUI (in a fresh process) binds its library lazily, compiles few functions, and puts bun:ffi's dlopen back", () => {
    const script = `const ffi = require("bun:ffi"); const d = ffi.dlopen; const m = await import(${JSON.stringify(join(import.meta.dir, "../../lib/tui/native-lib.ts"))});
      const core = await m.importOpenTui(); console.log(JSON.stringify({ ...m.lazyStats, restored: ffi.dlopen === d, renderer: typeof core.createCliRenderer }));`;
    const r = Bun.spawnSync([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    expect(r.stderr.toString()).toBe("");
    const out = JSON.parse(r.stdout.toString()) as { libraries: number; declared: number; compiled: number; restored: boolean; renderer: string };
    expect(out.restored).toBe(true);
    expect(out.renderer).toBe("function");
    if (process.platform === "linux") {
      expect(out.libraries).toBe(1);
      expect(out.declared).toBeGreaterThan(100);
      expect(out.compiled).toBeLessThan(out.declared / 10);
    }
  });
});
