// Showing and changing settings (what `flashchat config` does): list, get, `config set`, the setup wizard
// (`config --reset`), `--full-reset`, and repairing a config that does not load.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "pathe";
import { ConfigError, UserError } from "../errors.ts";
import { renderTable } from "../format.ts";
import { writeFileAtomic } from "../fs.ts";
import { logger } from "../log.ts";
import { isInteractive } from "../term.ts";
import { setConfigText } from "./legacy-file.ts";
import { KEY_SPECS, KEYS, type KeySpec, type ResolvedConfig, type ResolvedPaths } from "./schema.ts";
import { renderUserConfigTemplate } from "./template.ts";
import { describeSource, formatValue, resolvePaths, validateSetting } from "./index.ts";
import { closest } from "./validate.ts";

/** Validate, then rewrite the user file atomically with KEY set (comments and other lines kept). */
export function setUserSetting(file: string, key: string, value: string): void {
  const clean = validateSetting(key, value);
  const text = existsSync(file) ? readFileSync(file, "utf8") : renderUserConfigTemplate();
  writeFileAtomic(file, setConfigText(text, key, clean), 0o600);
}

/** The keys the setup wizard asks about, in order. */
export const WIZARD_KEYS = KEYS.filter((k) => "wizard" in k && k.wizard);

/** Write a fresh user config holding the wizard's answers (other keys commented out at their defaults). */
export function writeWizardConfig(file: string, answers: Record<string, string>): void {
  for (const [k, v] of Object.entries(answers)) validateSetting(k, v);
  writeFileAtomic(file, renderUserConfigTemplate(answers), 0o600);
}

/** What `config --full-reset` deletes: config, sessions, chat history, logs, pid file. Never models or artifacts. */
export function fullResetTargets(paths: ResolvedPaths): string[] {
  return [paths.userConfigFile, paths.sessionsDir, join(paths.configDir, "chat-history"), paths.logsDir, paths.pidFile];
}

export function deletePaths(targets: string[]): void {
  for (const t of targets) {
    try {
      rmSync(t, { recursive: true, force: true });
    } catch (e) {
      throw new ConfigError(`could not delete ${t}: ${(e as Error).message}`);
    }
  }
}

/** KEY as the user typed it (any case), checked: a usage error names the closest known one. */
export function requireKey(key: unknown): string {
  if (typeof key !== "string" || !key) throw new UserError("missing setting name", "`flashchat config` lists every setting", 2);
  const upper = key.toUpperCase();
  if (!KEY_SPECS.has(upper)) {
    const near = closest(upper, [...KEY_SPECS.keys()]);
    throw new ConfigError(`unknown setting ${key}${near ? ` (did you mean ${near}?)` : ""}`, "`flashchat config` lists every setting");
  }
  return upper;
}

/** The value of KEY as the user sees it (derived paths filled in). */
export function settingValue(config: ResolvedConfig, key: string): string | number | boolean | null {
  const name = KEY_SPECS.get(key)!.name as keyof ResolvedConfig;
  return config[name] as string | number | boolean | null;
}

/** Every setting with its value (secrets masked) and where it came from: `flashchat config`. */
export function renderSettings(config: ResolvedConfig, json: boolean): string {
  const shown = (k: KeySpec) => {
    const v = formatValue(settingValue(config, k.key));
    return k.secret && v ? "********" : v;
  };
  const rows = KEYS.map((k) => ({ key: k.key, value: shown(k), source: config.sources[k.key]! }));
  if (json) return JSON.stringify({ settings: rows, filesRead: config.filesRead, userConfigFile: config.paths.userConfigFile }, null, 2);
  const table = renderTable(rows.map((r) => [r.key, JSON.stringify(r.value), describeSource(r.source)]));
  return `${table}\n\nfiles read: ${config.filesRead.length ? config.filesRead.join(", ") : "none"}`;
}

/** `config set KEY VALUE`: save it, and warn when a higher source still overrides it. */
export function runSet(paths: ResolvedPaths, key: unknown, value: unknown, config?: ResolvedConfig): void {
  const k = requireKey(key);
  if (value === undefined) throw new UserError("config set needs a value", `usage: flashchat config set ${k} VALUE`, 2);
  setUserSetting(paths.userConfigFile, k, String(value));
  logger.success(`${k}=${JSON.stringify(String(value).trim())} saved in ${paths.userConfigFile}`);
  const src = config?.sources[k];
  if (src && (src.kind === "flag" || src.kind === "env" || src.kind === "file" || src.kind === "project")) logger.warn(`${describeSource(src)} still overrides it`);
}

/** `config --reset`: ask the wizard's questions on a terminal (current values as defaults), else write the defaults. */
export async function runWizard(paths: ResolvedPaths, config?: ResolvedConfig): Promise<void> {
  const answers: Record<string, string> = {};
  const ask = isInteractive();
  if (!ask) logger.info("not a terminal: writing the default settings (sessions are kept)");
  for (const spec of WIZARD_KEYS) {
    const current = ask && config ? formatValue(settingValue(config, spec.key)) : spec.default;
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

/**
 * `config --full-reset`: list what goes, ask (or take --yes; no terminal and no --yes is a usage error), stop our
 * background server first when `stopServer` is given (the pid file is how it is found), then delete.
 */
export async function runFullReset(paths: ResolvedPaths, opts: { yes: boolean; stopServer?: () => Promise<{ stopped: boolean; message: string }> }): Promise<void> {
  const targets = fullResetTargets(paths).filter((t) => existsSync(t));
  if (targets.length === 0) {
    logger.info("nothing to delete");
    return;
  }
  if (!opts.yes) {
    if (!isInteractive()) throw new UserError("config --full-reset deletes your config, sessions and logs", "add --yes to confirm", 2);
    logger.info(`will delete (models and artifacts are kept):\n  ${targets.join("\n  ")}`);
    const ok = await logger.prompt("Delete these?", { type: "confirm", initial: false, cancel: "reject" });
    if (ok !== true) {
      logger.info("nothing deleted");
      return;
    }
  }
  if (opts.stopServer && existsSync(paths.pidFile)) {
    const r = await opts.stopServer();
    if (r.stopped) logger.info(r.message);
  }
  deletePaths(targets);
  logger.success(`deleted ${targets.length} item(s); models and artifacts were kept`);
}

/** set / --reset / --full-reset with a config that does not load: work from the paths alone (no server to stop). */
export async function repairConfig(action: { set?: { key: unknown; value: unknown }; reset?: boolean; fullReset?: boolean; yes?: boolean }): Promise<void> {
  const paths = resolvePaths();
  if (action.fullReset) return runFullReset(paths, { yes: Boolean(action.yes) });
  if (action.reset) return runWizard(paths);
  runSet(paths, action.set?.key, action.set?.value);
}
