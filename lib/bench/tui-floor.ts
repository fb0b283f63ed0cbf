#!/usr/bin/env bun
// The floor under the TUI's start-up, for benchmark target `tui`: the least an OpenTUI program does before its
// first frame (OpenTUI imported as the TUI imports it, its renderer on the alternate screen, one line of text),
// and nothing of flashchat's. The benchmark times it beside the TUI and `bun -e`, started the same way, so
// that the TUI's own share of its start-up is the difference. Runs until a signal (the benchmark closes its window).
//   bun lib/bench/tui-floor.ts
import { importOpenTui } from "../tui/native-lib.ts";

/** What the program draws, and what the benchmark waits for on the screen. */
export const FLOOR_MARKER = "[floor drawn]";

if (import.meta.main) {
  const { createCliRenderer, TextRenderable } = await importOpenTui();
  // OpenTUI's own defaults: Ctrl-C and the usual signals tear the renderer down and end the process
  const renderer = await createCliRenderer({ screenMode: "alternate-screen", useMouse: true, targetFps: 30 });
  renderer.root.add(new TextRenderable(renderer, { id: "floor", content: FLOOR_MARKER }));
}
