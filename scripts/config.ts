#!/usr/bin/env bun
// Show or change settings: every key with its value and source; get/set/unset one; edit the file; the wizard; full reset.
//   bun scripts/config.ts                     bun scripts/config.ts get SERVER_PORT
//   bun scripts/config.ts set SERVER_PORT 8080   bun scripts/config.ts unset SERVER_PORT   bun scripts/config.ts edit
//   bun scripts/config.ts --reset   bun scripts/config.ts --full-reset --yes
import { defineCommand } from "citty";
import { globalArgs, jsonArgs, runScript, yesArgs } from "../lib/cli.ts";
import { repairConfig, renderSettings, requireKey, runEdit, runFullReset, runSet, runUnset, settingValue } from "../lib/config/edit.ts";
import { runWizard, type WizardOptions } from "../lib/config/wizard.ts";
import { isInteractive } from "../lib/term.ts";
import { formatValue, loadFlashchatConfig, resolvePaths } from "../lib/config/index.ts";
import { closest } from "../lib/config/validate.ts";
import { ConfigError, UserError } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";

const command = defineCommand({
  meta: { name: "config", description: "Show or change settings (get KEY, set KEY VALUE, unset KEY, edit, --reset, --full-reset)" },
  args: {
    ...globalArgs,
    ...jsonArgs,
    ...yesArgs,
    action: { type: "positional", required: false, description: "get | set | unset | edit (none: list every setting)", valueHint: "get|set|unset|edit" },
    key: { type: "positional", required: false, description: "Setting name, e.g. SERVER_PORT", valueHint: "KEY" },
    value: { type: "positional", required: false, description: "New value (for set)", valueHint: "VALUE" },
    reset: { type: "boolean", description: "Re-run the setup wizard (sessions are kept)" },
    fullReset: { type: "boolean", description: "Delete config, sessions, logs and pid file (never models)" },
  },
  async run({ args }) {
    const repairing = args.fullReset || args.reset || args.action === "set" || args.action === "unset" || args.action === "edit";
    if (args.action === "edit" && args.key !== undefined) throw new UserError(`unexpected argument: ${args.key}`, "usage: flashchat config edit", 2);
    if (args.action !== "set" && args.value !== undefined) throw new UserError(`unexpected argument: ${args.value}`, `usage: flashchat config ${args.action} KEY`, 2);
    // the wizard's model list (registry and installed models), only when it will be asked
    const wizard = async (cfg?: Awaited<ReturnType<typeof loadFlashchatConfig>>): Promise<WizardOptions> =>
      cfg && isInteractive() ? { modelChoices: (await import("../lib/setup/model-choices.ts")).listModelChoices(cfg) } : {};
    const config = await loadFlashchatConfig({ configFile: args.config }).catch((e) => {
      // set / --reset / --full-reset must still work when a bad value is what the user wants to fix
      if (!(repairing && e instanceof ConfigError)) throw e;
      logger.warn(e.message);
      return undefined;
    });
    if (!config) {
      const paths = resolvePaths();
      if (args.action === "edit") return runEdit(paths);
      if (args.action === "unset") return runUnset(paths, args.key);
      return repairConfig({ set: { key: args.key, value: args.value }, reset: args.reset, fullReset: args.fullReset, yes: args.yes });
    }
    if (args.fullReset) {
      const stopServer = async () => (await import("../lib/client/local.ts")).stopServer(config);
      return runFullReset(config.paths, { yes: Boolean(args.yes), stopServer });
    }
    if (args.reset) return runWizard(config.paths, config, await wizard(config));
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
      case "unset":
        return runUnset(config.paths, args.key, config);
      case "edit":
        return runEdit(config.paths);
      default: {
        const near = closest(String(args.action), ["get", "set", "unset", "edit"]);
        throw new UserError(`unknown config action "${args.action}"${near ? ` — did you mean "${near}"?` : ""}`, "use: flashchat config [get KEY | set KEY VALUE | unset KEY | edit | --reset | --full-reset]", 2);
      }
    }
  },
});

export default command;
if (import.meta.main) await runScript(command);
