// The table of flashchat's commands: name, one-line description, and where its implementation lives.
// scripts/flashchat.ts dispatches through it; the menu and `help` list it.

export interface CommandEntry {
  name: string;
  description: string;
  /** Script file (relative to scripts/) that default-exports the citty command. */
  file: string;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: "chat", description: "Chat with the model in the terminal (starts the server if needed)", file: "chat.ts" },
  { name: "prompt", description: "One reply to one prompt, streamed to stdout", file: "prompt.ts" },
  { name: "serve", description: "Start the OpenAI-compatible server in the background (--stop to stop it)", file: "serve.ts" },
  { name: "status", description: "What is installed, prepared and running", file: "status.ts" },
  { name: "config", description: "Show or change settings (get, set, --reset, --full-reset)", file: "config.ts" },
  { name: "sessions", description: "List chat sessions, show or delete one", file: "sessions.ts" },
  { name: "setup", description: "Prepare a model: build, download, extract, repack", file: "setup.ts" },
  { name: "models", description: "The models flashchat knows, and what is downloaded and prepared", file: "models.ts" },
  { name: "benchmark", description: "Engine and end-to-end benchmarks (`benchmark` alone lists targets)", file: "benchmark.ts" },
];

export const findCommand = (name: string) => COMMANDS.find((c) => c.name === name);
