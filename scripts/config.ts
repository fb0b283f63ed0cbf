#!/usr/bin/env bun
// Show or change settings: every key with its value and source; get/set one; re-run the wizard; full reset.
//   bun scripts/config.ts                     bun scripts/config.ts get SERVER_PORT
//   bun scripts/config.ts set SERVER_PORT 8080   bun scripts/config.ts --reset   bun scripts/config.ts --full-reset --yes
import { existsSync } from "node:fs";
import { defineCommand } from "citty";
import { globalArgs, jsonArgs, runScript, yesArgs } from "../lib/cli.ts";
import {
  describeSource,
  formatValue,
  KEY_SPECS,
  KEYS,
  type KeySpec,
  loadFlashchatConfig,
  type ResolvedConfig,
  type ResolvedPaths,
  resolvePaths,
} from "../lib/config/index.ts";
import { deletePaths, fullResetTargets, setUserSetting, WIZARD_KEYS, writeWizardConfig } from "../lib/config/edit.ts";
import { closest } from "../lib/config/validate.ts";
import { ConfigError, UserError } from "../lib/errors.ts";
import { renderTable } from "../lib/format.ts";
import { logger } from "../lib/log.ts";
import { isInteractive } from "../lib/term.ts";

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
    if (!config) return repair(args);
    if (args.fullReset) return fullReset(config.paths, Boolean(args.yes), config);
    if (args.reset) return runWizard(config);
    switch (args.action) {
      case undefined:
        return list(config, Boolean(args.json));
      case "get": {
        const key = requireKey(args.key);
        console.log(formatValue(valueOf(config, key)));
        return;
      }
      case "set": {
        const key = requireKey(args.key);
        if (args.value === undefined) throw new UserError("config set needs a value", `usage: flashchat config set ${key} VALUE`, 2);
        setUserSetting(config.paths.userConfigFile, key, String(args.value));
        logger.success(`${key}=${JSON.stringify(String(args.value).trim())} saved in ${config.paths.userConfigFile}`);
        const src = config.sources[key];
        if (src && (src.kind === "flag" || src.kind === "env" || src.kind === "file" || src.kind === "project")) {
          logger.warn(`${describeSource(src)} still overrides it`);
        }
        return;
      }
      default:
        throw new UserError(`unknown config action "${args.action}"`, "use: flashchat config [get KEY | set KEY VALUE | --reset | --full-reset]", 2);
    }
  },
});

/** set / --reset / --full-reset with a config that does not load: work from the paths alone. */
async function repair(args: { action?: string; key?: unknown; value?: unknown; reset?: boolean; fullReset?: boolean; yes?: boolean }) {
  const paths = resolvePaths();
  if (args.fullReset) return fullReset(paths, Boolean(args.yes));
  if (args.reset) return runWizard(undefined, paths);
  const key = requireKey(args.key);
  if (args.value === undefined) throw new UserError("config set needs a value", `usage: flashchat config set ${key} VALUE`, 2);
  setUserSetting(paths.userConfigFile, key, String(args.value));
  logger.success(`${key}=${JSON.stringify(String(args.value).trim())} saved in ${paths.userConfigFile}`);
}

function requireKey(key: unknown): string {
  if (typeof key !== "string" || !key) throw new UserError("missing setting name", "`flashchat config` lists every setting", 2);
  const upper = key.toUpperCase();
  if (!KEY_SPECS.has(upper)) {
    const near = closest(upper, [...KEY_SPECS.keys()]);
    throw new ConfigError(`unknown setting ${key}${near ? ` (did you mean ${near}?)` : ""}`, "`flashchat config` lists every setting");
  }
  return upper;
}

/** The value of KEY as the user sees it (derived paths filled in). */
function valueOf(config: ResolvedConfig, key: string) {
  const name = KEY_SPECS.get(key)!.name as keyof ResolvedConfig;
  return config[name] as string | number | boolean | null;
}

function list(config: ResolvedConfig, json: boolean): void {
  const shown = (k: KeySpec) => {
    const v = formatValue(valueOf(config, k.key));
    return k.secret && v ? "********" : v;
  };
  const rows = KEYS.map((k) => ({ key: k.key, value: shown(k), source: config.sources[k.key]! }));
  if (json) {
    console.log(JSON.stringify({ settings: rows, filesRead: config.filesRead, userConfigFile: config.paths.userConfigFile }, null, 2));
    return;
  }
  console.log(renderTable(rows.map((r) => [r.key, JSON.stringify(r.value), describeSource(r.source)])));
  console.log(`\nfiles read: ${config.filesRead.length ? config.filesRead.join(", ") : "none"}`);
}

async function runWizard(config: ResolvedConfig | undefined, paths: ResolvedPaths = config!.paths): Promise<void> {
  const answers: Record<string, string> = {};
  const ask = isInteractive();
  if (!ask) logger.info("not a terminal: writing the default settings (sessions are kept)");
  for (const spec of WIZARD_KEYS) {
    const current = ask && config ? formatValue(valueOf(config, spec.key)) : spec.default;
    if (!ask) {
      answers[spec.key] = current;
      continue;
    }
    const answer = await logger.prompt(`${spec.description} (${spec.key})`, { type: "text", default: current, placeholder: current, cancel: "reject" });
    answers[spec.key] = String(answer ?? current).trim() || current;
  }
  writeWizardConfig(paths.userConfigFile, answers);
  logger.success(`settings written to ${paths.userConfigFile}`);
}

async function fullReset(paths: ResolvedPaths, yes: boolean, config?: ResolvedConfig): Promise<void> {
  const targets = fullResetTargets(paths).filter((t) => existsSync(t));
  if (targets.length === 0) {
    logger.info("nothing to delete");
    return;
  }
  if (!yes) {
    if (!isInteractive()) throw new UserError("config --full-reset deletes your config, sessions and logs", "add --yes to confirm", 2);
    logger.info(`will delete (models and artifacts are kept):\n  ${targets.join("\n  ")}`);
    const ok = await logger.prompt("Delete these?", { type: "confirm", initial: false, cancel: "reject" });
    if (ok !== true) {
      logger.info("nothing deleted");
      return;
    }
  }
  if (config && existsSync(paths.pidFile)) {
    // the pid file is how `serve --stop` finds the server: stop it before the file goes
    const { stopServer } = await import("../lib/client/local.ts");
    const r = await stopServer(config);
    if (r.stopped) logger.info(r.message);
  }
  deletePaths(targets);
  logger.success(`deleted ${targets.length} item(s); models and artifacts were kept`);
}

export default command;
if (import.meta.main) await runScript(command);
