#!/usr/bin/env bun
// The models flashchat knows: sizes on disk, RAM, active experts, and what is downloaded and prepared here;
// `show NAME` describes one in full, `rm NAME` deletes its artifacts and/or download (sizes shown, asks first).
//   bun scripts/models.ts                bun scripts/models.ts --json
//   bun scripts/models.ts show demo      bun scripts/models.ts rm qwen3.6-35b --download --yes
import { defineCommand } from "citty";
import { globalArgs, jsonArgs, runScript, yesArgs } from "../lib/cli.ts";
import { resolveColor } from "../lib/term.ts";
import { loadFlashchatConfig } from "../lib/config/index.ts";
import type { ResolvedConfig } from "../lib/config/schema.ts";
import { UserError } from "../lib/errors.ts";
import { renderModelTable } from "../lib/setup/models-table.ts";
import { cachedRepos, listModelStatus, otherPreparedModels } from "../lib/setup/status.ts";

const ACTIONS = ["show", "rm"] as const;

const command = defineCommand({
  meta: { name: "models", description: "The models flashchat knows, and what is downloaded and prepared (show NAME, rm NAME)" },
  args: {
    action: { type: "positional", required: false, description: "show NAME: one model in full; rm NAME: delete its artifacts and/or download", valueHint: "show|rm" },
    name: { type: "positional", required: false, description: "A registry id, a Hugging Face repo (org/name) or a local folder", valueHint: "NAME" },
    ...globalArgs,
    ...jsonArgs,
    ...yesArgs,
    artifacts: { type: "boolean", description: "rm: only the prepared artifacts (weights, packed experts)" },
    download: { type: "boolean", description: "rm: only the download (the Hugging Face cache entry; the demo's generated checkpoint)" },
  },
  async run({ args }) {
    const config = await loadFlashchatConfig({ configFile: args.config });
    const action = args.action as string | undefined;
    if (action === undefined) {
      if (args.artifacts || args.download) throw new UserError("--artifacts and --download go with: flashchat models rm NAME", undefined, 2);
      return listModels(config, args.json);
    }
    if (!ACTIONS.includes(action as (typeof ACTIONS)[number])) throw new UserError(`unknown models action "${action}"`, "use: flashchat models [show NAME | rm NAME]", 2);
    const name = args.name as string | undefined;
    if (!name) throw new UserError(`flashchat models ${action} needs a model`, `e.g. flashchat models ${action} demo (flashchat models lists them)`, 2);
    if (action === "show") {
      if (args.artifacts || args.download) throw new UserError("--artifacts and --download go with: flashchat models rm NAME", undefined, 2);
      const { loadModelInfo, renderModelInfo } = await import("../lib/setup/model-info.ts");
      const info = loadModelInfo(config, name);
      console.log(args.json ? JSON.stringify(info, null, 2) : renderModelInfo(info));
      return;
    }
    const { removeModel } = await import("../lib/setup/remove.ts");
    await removeModel(config, name, { artifacts: args.artifacts, download: args.download, yes: args.yes, json: args.json });
  },
});

function listModels(config: ResolvedConfig, json: boolean | undefined): void {
  const models = listModelStatus(config);
  const others = { prepared: otherPreparedModels(config), cached: cachedRepos(config) };
  if (json) {
    console.log(JSON.stringify({ models, others, hfCacheDir: config.paths.hfCacheDir, artifactsDir: config.artifactsDir }, null, 2));
    return;
  }
  console.log(renderModelTable(models, others, { hfCacheDir: config.paths.hfCacheDir, artifactsDir: config.artifactsDir, color: resolveColor(config.colorOutput, process.stdout.isTTY) }));
}

export default command;
if (import.meta.main) await runScript(command);
