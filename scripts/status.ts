#!/usr/bin/env bun
// What is installed, prepared and running: model, checkpoint, artifacts, engine, server, settings.
//   bun scripts/status.ts        bun scripts/status.ts --json        bun scripts/status.ts --model demo
import { defineCommand } from "citty";
import { globalArgs, jsonArgs, modelArgs, runScript } from "../lib/cli.ts";
import { loadFlashchatConfig } from "../lib/config/index.ts";
import { useDefaultModel } from "../lib/client/local.ts";
import { loadStatus, renderStatus } from "../lib/status.ts";

const command = defineCommand({
  meta: { name: "status", description: "What is installed, prepared and running" },
  args: { ...globalArgs, ...modelArgs, ...jsonArgs },
  async run({ args }) {
    const config = await loadFlashchatConfig({ configFile: args.config, overrides: { MODEL_REPO: args.model }, flagNames: { MODEL_REPO: "--model" } });
    // no MODEL_REPO configured: the model set up here, as chat and prompt would use
    const status = await loadStatus(await useDefaultModel(config, null));
    console.log(args.json ? JSON.stringify(status, null, 2) : renderStatus(status));
  },
});

export default command;
if (import.meta.main) await runScript(command);
