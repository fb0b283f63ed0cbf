#!/usr/bin/env bun
// Set up a model: prerequisites, dependencies, engine build, download (or the demo's generation), weight
// extraction and expert repacking, asking once before anything large. A ready model starts with no work.
//   bun scripts/setup.ts --model demo
//   bun scripts/setup.ts --model mlx-community/Qwen3.5-397B-A17B-4bit --yes
//   bun scripts/setup.ts --dry-run
import { defineCommand } from "citty";
import { globalArgs, modelArgs, runScript, yesArgs } from "../lib/cli.ts";
import { loadFlashchatConfig } from "../lib/config/index.ts";
import { runSetup } from "../lib/setup/index.ts";

const command = defineCommand({
  meta: { name: "setup", description: "Prepare a model: build, download, extract, repack" },
  args: {
    ...globalArgs,
    ...modelArgs,
    ...yesArgs,
    quantization: { type: "string", description: "Expert precision to prepare: 4bit, or 2bit (both sets)", valueHint: "4bit|2bit" },
    dryRun: { type: "boolean", description: "Show what setup would do, do nothing" },
  },
  async run({ args }) {
    const config = await loadFlashchatConfig({
      configFile: args.config,
      overrides: { MODEL_REPO: args.model, QUANTIZATION: args.quantization },
      flagNames: { MODEL_REPO: "--model", QUANTIZATION: "--quantization" },
    });
    await runSetup(config, { yes: args.yes, dryRun: args.dryRun });
  },
});

export default command;
if (import.meta.main) await runScript(command);
