#!/usr/bin/env bun
// Chat with the model in the terminal; starts the server in the background when it is not running.
//   bun scripts/chat.ts
//   bun scripts/chat.ts --resume 1          (a number `sessions` shows, an id or its unique start)
//   bun scripts/chat.ts --resume            (no value, on a terminal: pick from the numbered list)
import { type ArgsDef, defineCommand, parseArgs } from "citty";
import { runConnectedChat } from "../lib/chat/connect.ts";
import { useDefaultModel } from "../lib/client/local.ts";
import { contextArgs, globalArgs, modelArgs, runScript, seedArgs, yesArgs } from "../lib/cli.ts";
import { loadFlashchatConfig } from "../lib/config/index.ts";
import { UserError } from "../lib/errors.ts";
import { isInteractive } from "../lib/term.ts";

const chatArgs = {
  ...globalArgs,
  ...modelArgs,
  ...contextArgs,
  ...yesArgs,
  ...seedArgs,
  resume: { type: "string", description: "Continue a saved session: its number in `flashchat sessions`, its id, or (no value) pick one", valueHint: "N|ID" },
  showThinking: { type: "boolean", description: "Show the model's thinking, dimmed (default: SHOW_THINKING; /think on|off in chat)" },
} as const satisfies ArgsDef;

const command = defineCommand({
  meta: { name: "chat", description: "Chat with the model in the terminal (starts the server if needed)" },
  args: chatArgs,
  async run({ args: parsed, rawArgs }) {
    let args = parsed;
    // citty gives a string flag the next word even when that is a flag: `--resume --model demo` is --resume
    // with no value, and --model demo still counts
    const at = rawArgs.indexOf("--resume");
    if (at >= 0 && args.resume?.startsWith("-") && rawArgs[at + 1] === args.resume) {
      args = { ...parseArgs([...rawArgs.slice(0, at), ...rawArgs.slice(at + 1)], chatArgs), resume: "" } as typeof args;
    }
    if (args.resume !== undefined && args.resume.trim() === "" && !isInteractive())
      throw new UserError("chat --resume without a session needs a terminal to pick one", "name it: flashchat chat --resume N (N from `flashchat sessions`) or --resume ID", 2);
    const config = await useDefaultModel(await loadFlashchatConfig({
      configFile: args.config,
      overrides: { SHOW_THINKING: args.showThinking, MODEL_REPO: args.model, CONTEXT_SIZE: args.context, SEED: args.seed },
      flagNames: { SHOW_THINKING: "--show-thinking", MODEL_REPO: "--model", CONTEXT_SIZE: "--context", SEED: "--seed" },
    }));
    await runConnectedChat(config, { configFile: args.config, model: args.model, context: args.context, yes: args.yes, resume: args.resume });
  },
});

export default command;
if (import.meta.main) await runScript(command);
