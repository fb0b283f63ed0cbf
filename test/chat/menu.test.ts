import { expect, test } from "bun:test";
import { renderMenu, resolveMenuItems } from "../../lib/chat/menu.ts";
import { stripAnsi } from "../../lib/chat/render.ts";

const stopped = { running: false, healthy: false, baseUrl: "http://127.0.0.1:8000", summary: "not running (port 8000)" };
const running = { running: true, healthy: true, baseUrl: "http://127.0.0.1:8000", summary: "running at http://127.0.0.1:8000 (ok, pid 42)" };

test("the items follow the server state", () => {
  expect(resolveMenuItems(stopped).map((i) => i.label)).toEqual([
    "New chat", "Resume a session", "Start the server", "Configure (setup wizard)", "Status", "Sessions", "Benchmarks", "Choose the model", "Quit",
  ]);
  expect(resolveMenuItems(running)[2]).toEqual({ action: "server", label: "Stop the server" });
});

test("fits 80x24 even with a long model name and a message; the selection is marked", () => {
  for (const color of [false, true]) {
    const text = renderMenu(resolveMenuItems(running), 4, { server: running, model: `org/${"x".repeat(120)}`, color, message: "m".repeat(200) });
    const lines = stripAnsi(text).split("\n");
    expect(lines.length).toBeLessThanOrEqual(24);
    for (const l of lines) expect(Bun.stringWidth(l)).toBeLessThanOrEqual(80);
    expect(lines).toContain(color ? "> 5. Status " : "> 5. Status");
    expect(lines).toContain("  1. New chat");
  }
});
