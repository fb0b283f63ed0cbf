#!/usr/bin/env bun
// Chat with the model in the terminal; starts the server in the background when it is not running.
//   bun scripts/chat.ts
//   bun scripts/chat.ts --resume chat-1732400000000
import { defineCommand } from "citty";
import { runConnectedChat } from "../lib/chat/connect.ts";
import { useDefaultModel } from "../lib/client/local.ts";
import { contextArgs, globalArgs, modelArgs, runScript, yesArgs } from "../lib/cli.ts";
import { loadFlashchatConfig } from "../lib/config/index.ts";

const command = defineCommand({
  meta: { name: "chat", description: "Chat with the model in the terminal (starts the server if needed)" },
  args: {
    ...globalArgs,
    ...modelArgs,
    ...contextArgs,
    ...yesArgs,
    resume: { type: "string", description: "Continue a saved session (see `flashchat sessions`)", valueHint: "ID" },
    showThinking: { type: "boolean", description: "Show the model's thinking, dimmed (default: SHOW_THINKING; /think on|off in chat)" },
  },
  async run({ args }) {
    const config = await useDefaultModel(await loadFlashchatConfig({
      configFile: args.config,
      overrides: { SHOW_THINKING: args.showThinking, MODEL_REPO: args.model, CONTEXT_SIZE: args.context },
      flagNames: { SHOW_THINKING: "--show-thinking", MODEL_REPO: "--model", CONTEXT_SIZE: "--context" },
    }));
    await runConnectedChat(config, { configFile: args.config, model: args.model, context: args.context, yes: args.yes, resume: args.resume });
  },
});

export default command;
if (import.meta.main) await runScript(command);
