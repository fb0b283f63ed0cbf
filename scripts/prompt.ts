#!/usr/bin/env bun
// One reply to one prompt, streamed to stdout (status and errors on stderr, so it pipes cleanly).
//   bun scripts/prompt.ts "Why is the sky blue?" --tokens 200
//   echo "Summarize: ..." | bun scripts/prompt.ts --no-think --json   (no prompt and piped input: stdin, as with -)
import { defineCommand } from "citty";
import { renderStats } from "../lib/chat/chat.ts";
import { resolvePromptText, runPrompt } from "../lib/chat/prompt.ts";
import { resolveApiKey, startPrivateServer, useDefaultModel } from "../lib/client/local.ts";
import { ANSI } from "../lib/chat/render.ts";
import { contextArgs, globalArgs, jsonArgs, modelArgs, parseIntFlag, runScript, seedArgs, yesArgs } from "../lib/cli.ts";
import { loadFlashchatConfig } from "../lib/config/index.ts";
import { resolveModelTarget } from "../lib/model/target.ts";
import { resolveColor } from "../lib/term.ts";

const command = defineCommand({
  meta: { name: "prompt", description: "One reply to one prompt, streamed to stdout" },
  args: {
    prompt: { type: "positional", required: false, description: "The prompt (- reads it from stdin)", valueHint: "TEXT" },
    ...globalArgs,
    ...modelArgs,
    ...contextArgs,
    ...jsonArgs,
    ...yesArgs,
    ...seedArgs,
    tokens: { type: "string", description: "Most tokens to generate (default MAX_TOKENS)", valueHint: "N" },
    think: { type: "boolean", description: "Let the model think first (--no-think: answer directly)", negativeDescription: "Answer without thinking" },
    system: { type: "string", description: "System prompt", valueHint: "TEXT" },
  },
  async run({ args }) {
    const maxTokens = parseIntFlag(args.tokens, "--tokens");
    const config = await useDefaultModel(await loadFlashchatConfig({ configFile: args.config, overrides: { MODEL_REPO: args.model, CONTEXT_SIZE: args.context, SEED: args.seed }, flagNames: { MODEL_REPO: "--model", CONTEXT_SIZE: "--context", SEED: "--seed" } }));
    resolveModelTarget(config); // a model that does not resolve (a missing folder) is the first error
    const text = await resolvePromptText(args.prompt);
    const result = await runPrompt(config, {
      text,
      maxTokens,
      think: args.think,
      system: args.system,
      json: args.json,
      apiKey: resolveApiKey(config),
      configFile: args.config,
      prepare: async () => (await import("../lib/setup/index.ts")).ensureReady(config, { yes: args.yes }),
      startLocal: async (cfg) => {
        // no server: make sure the model is ready (asks once, or --yes), then run it just for this reply
        await (await import("../lib/setup/index.ts")).ensureReady(cfg, { yes: args.yes });
        return startPrivateServer(cfg);
      },
    });
    if (process.stderr.isTTY && !args.json && !args.quiet) {
      const line = renderStats(result.stats);
      process.stderr.write(resolveColor(config.colorOutput, process.stderr.isTTY) ? `${ANSI.dim}${line}${ANSI.reset}\n` : `${line}\n`);
    }
  },
});

export default command;
if (import.meta.main) await runScript(command);
