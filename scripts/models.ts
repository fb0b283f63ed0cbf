#!/usr/bin/env bun
// The models flashchat knows: sizes on disk, RAM, active experts, and what is downloaded and prepared here.
//   bun scripts/models.ts
//   bun scripts/models.ts --json
import { defineCommand } from "citty";
import { globalArgs, jsonArgs, runScript } from "../lib/cli.ts";
import { resolveColor } from "../lib/term.ts";
import { loadFlashchatConfig } from "../lib/config/index.ts";
import { renderModelTable } from "../lib/setup/models-table.ts";
import { cachedRepos, listModelStatus, otherPreparedModels } from "../lib/setup/status.ts";

const command = defineCommand({
  meta: { name: "models", description: "The models flashchat knows, and what is downloaded and prepared" },
  args: { ...globalArgs, ...jsonArgs },
  async run({ args }) {
    const config = await loadFlashchatConfig({ configFile: args.config });
    const models = listModelStatus(config);
    const others = { prepared: otherPreparedModels(config), cached: cachedRepos(config) };
    if (args.json) {
      console.log(JSON.stringify({ models, others, hfCacheDir: config.paths.hfCacheDir, artifactsDir: config.artifactsDir }, null, 2));
      return;
    }
    console.log(renderModelTable(models, others, { hfCacheDir: config.paths.hfCacheDir, artifactsDir: config.artifactsDir, color: resolveColor(config.colorOutput, process.stdout.isTTY) }));
  },
});

export default command;
if (import.meta.main) await runScript(command);
