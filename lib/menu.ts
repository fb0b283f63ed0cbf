// Bare `flashchat` on a terminal: the interactive menu (the chat module's full menu when present).
import { existsSync } from "node:fs";
import { join } from "pathe";
import { COMMANDS } from "./commands.ts";
import { logger } from "./log.ts";

export async function runMenu(opts: { configFile?: string } = {}): Promise<void> {
  const full = join(import.meta.dir, "chat", "menu.ts");
  if (existsSync(full)) {
    const mod = (await import(full)) as { runMenu?: (o: { configFile?: string }) => Promise<void> };
    if (mod.runMenu) return mod.runMenu(opts);
  }
  // A plain menu of the commands: pick one, it runs, and you come back here.
  for (;;) {
    const choice = await logger.prompt("flashchat — what would you like to do?", {
      type: "select",
      options: [...COMMANDS.map((c) => ({ value: c.name, label: c.name, hint: c.description })), { value: "quit", label: "quit" }],
      cancel: "symbol",
    });
    if (typeof choice !== "string" || choice === "quit") return;
    const proc = Bun.spawn([process.execPath, join(import.meta.dir, "..", "scripts", "flashchat.ts"), choice], {
      stdio: ["inherit", "inherit", "inherit"],
    });
    await proc.exited;
  }
}
