#!/usr/bin/env bun
// Show or change settings: every key with its value and source; get/set one; re-run the wizard; full reset.
//   bun scripts/config.ts                     bun scripts/config.ts get SERVER_PORT
//   bun scripts/config.ts set SERVER_PORT 8080   bun scripts/config.ts --reset   bun scripts/config.ts --full-reset --yes
import { defineCommand } from "citty";
import { globalArgs, jsonArgs, runScript, yesArgs } from "../lib/cli.ts";
import { repairConfig, renderSettings, requireKey, runFullReset, runSet, runWizard, settingValue } from "../lib/config/edit.ts";
import { formatValue, loadFlashchatConfig } from "../lib/config/index.ts";
import { ConfigError, UserError } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";

const command = defineCommand({
  meta: { name: "config", description: "Show or change settings (get KEY, set KEY VALUE, --reset, --full-reset)" },
  args: {
    ...globalArgs,
    ...jsonArgs,
    ...yesArgs,
    action: { type: "positional", required: false, description: "get | set (none: list every setting)", valueHint: "get|set" },
    key: { type: "positional", required: false, description: "Setting name, e.g. SERVER_PORT", valueHint: "KEY" },
    value: { type: "positional", required: false, description: "New value (for set)", valueHint: "VALUE" },
    reset: { type: "boolean", description: "Re-run the setup wizard (sessions are kept)" },
    fullReset: { type: "boolean", description: "Delete config, sessions, logs and pid file (never models)" },
  },
  async run({ args }) {
    const repairing = args.fullReset || args.reset || args.action === "set";
    const config = await loadFlashchatConfig({ configFile: args.config }).catch((e) => {
      // set / --reset / --full-reset must still work when a bad value is what the user wants to fix
      if (!(repairing && e instanceof ConfigError)) throw e;
      logger.warn(e.message);
      return undefined;
    });
    if (!config) return repairConfig({ set: { key: args.key, value: args.value }, reset: args.reset, fullReset: args.fullReset, yes: args.yes });
    if (args.fullReset) {
      const stopServer = async () => (await import("../lib/client/local.ts")).stopServer(config);
      return runFullReset(config.paths, { yes: Boolean(args.yes), stopServer });
    }
    if (args.reset) return runWizard(config.paths, config);
    switch (args.action) {
      case undefined:
        console.log(renderSettings(config, Boolean(args.json)));
        return;
      case "get":
        if (args.value !== undefined) throw new UserError(`unexpected argument: ${args.value}`, "usage: flashchat config get KEY", 2);
        console.log(formatValue(settingValue(config, requireKey(args.key))));
        return;
      case "set":
        return runSet(config.paths, args.key, args.value, config);
      default:
        throw new UserError(`unknown config action "${args.action}"`, "use: flashchat config [get KEY | set KEY VALUE | --reset | --full-reset]", 2);
    }
  },
});

export default command;
if (import.meta.main) await runScript(command);
