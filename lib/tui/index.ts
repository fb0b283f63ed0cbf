// The full-screen TUI of a bare `flashchat` on a terminal (OpenTUI): start it, follow the terminal's theme,
// and put the terminal back as it was on quit, on a signal and on a crash. Imported lazily by scripts/flashchat.ts.
// Start-up order: OpenTUI, the renderer, the chat view, the first frame; then the config (c12 and the config
// layer), which fills in what needs it (the model in the status line, a theme chosen in the config, the
// other views, the chat's client).
import { elapsedMs, logger, logStep } from "../log.ts";
import { importOpenTui } from "./native-lib.ts";

export interface RunTuiOptions {
  configFile?: string;
  resume?: string;
}

const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1, SIGQUIT: 3 } as const;

/** Run the TUI until the user quits; resolves with the exit code (0, or 128+signal). */
export async function runTui(opts: RunTuiOptions = {}): Promise<number> {
  // -v steps (`flashchat -v 2>steps.txt`: on the terminal they would land in the TUI's screen)
  let t = elapsedMs();
  const step = (what: string) => (logStep(`tui: ${what}`, t), (t = elapsedMs()));
  const { CliRenderer } = await importOpenTui();
  step("OpenTUI imported");
  // createCliRenderer's two halves, apart: the renderer, then its terminal set-up, which waits for the
  // terminal's answers to its queries (tens of ms); the views are imported and built meanwhile
  const { stdin, stdout } = process;
  const renderer = new CliRenderer(stdin, stdout, stdout.columns || 80, stdout.rows || 24, {
    screenMode: "alternate-screen",
    exitOnCtrlC: false,
    // we handle signals ourselves so that each one ends the process (OpenTUI's handler only tears down)
    exitSignals: [],
    useMouse: true,
    openConsoleOnError: false,
    targetFps: 30,
  });
  const terminalReady = renderer.setupTerminal();
  // an early failure is taken where terminalReady is awaited
  terminalReady.catch(() => {});
  step("renderer made");
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    renderer.destroy();
  };
  // a crash: terminal back first, then the stack on the normal screen, exit 1
  const onCrash = (e: unknown) => {
    restore();
    void renderer.closed.finally(() => {
      process.stderr.write(`flashchat TUI crashed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    });
  };
  process.on("uncaughtException", onCrash);
  process.on("unhandledRejection", onCrash);
  // the terminal back, the renderer gone, the crash handlers off: on quit and on a failed terminal set-up
  const tearDown = async () => {
    restore();
    await renderer.closed.catch(() => {});
    process.off("uncaughtException", onCrash);
    process.off("unhandledRejection", onCrash);
  };

  const { TuiApp } = await import("./app.ts");
  step("views imported");
  const app = new TuiApp(renderer, opts);
  renderer.on("theme_mode", (mode: "dark" | "light") => app.terminalThemeChanged(mode));
  step("views built");
  try {
    await terminalReady;
  } catch (e) {
    // as createCliRenderer does: take the renderer down, then report
    await tearDown();
    throw e;
  }
  // the terminal may have told its background while the views were built
  app.terminalSetUp();
  step("terminal set up");
  const firstFrame = new Promise<void>((drawn) => renderer.once("frame", () => (step("first frame drawn"), drawn())));
  let exitCode = 0;
  for (const [sig, n] of Object.entries(SIGNALS)) {
    process.on(sig, () => {
      exitCode = 128 + n;
      void app.quit();
    });
  }
  await app.start();
  // the config after the first frame; its warnings are shown in the footer and, once the terminal is back, on stderr
  const warnings: string[] = [];
  let failure: unknown;
  await Promise.race([firstFrame, app.finished]);
  try {
    const { loadFlashchatConfig } = await import("../config/index.ts");
    const config = await loadFlashchatConfig({ configFile: opts.configFile, warn: (m) => warnings.push(m) });
    step("config read");
    app.configLoaded(config, warnings);
  } catch (e) {
    // an invalid config: the terminal back, then the error as any command reports it
    failure = e;
    void app.quit();
  }
  await app.finished;
  await tearDown();
  if (failure) throw failure;
  for (const w of warnings) logger.warn(w);
  return exitCode;
}
