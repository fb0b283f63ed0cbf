// Showing and changing settings (what `flashchat config` does): list, get, `config set`, the setup wizard
// (`config --reset`), `--full-reset`, and repairing a config that does not load.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { ConfigError, UserError } from "../errors.ts";
import { renderTable } from "../format.ts";
import { writeFileAtomic } from "../fs.ts";
import { logger } from "../log.ts";
import { isInteractive } from "../term.ts";
import { parseConfigText, setConfigText, unsetConfigText } from "./legacy-file.ts";
import { KEY_SPECS, KEYS, type KeySpec, type ResolvedConfig, type ResolvedPaths } from "./schema.ts";
import { renderUserConfigTemplate } from "./template.ts";
import { runWizard, type WizardOptions } from "./wizard.ts";
import { describeSource, formatValue, resolvePaths, validateSetting } from "./index.ts";
import { closest, describeAllowed, parseValue } from "./validate.ts";

/** Validate, then rewrite the user file atomically with KEY set (comments and other lines kept). */
export function setUserSetting(file: string, key: string, value: string): void {
  const clean = validateSetting(key, value);
  const text = existsSync(file) ? readFileSync(file, "utf8") : renderUserConfigTemplate();
  writeFileAtomic(file, setConfigText(text, key, clean), 0o600);
}

/** `config unset KEY`: remove KEY from the user file (back to the default, or what a higher source says). */
export function runUnset(paths: ResolvedPaths, key: unknown, config?: ResolvedConfig): void {
  const k = requireKey(key);
  const file = paths.userConfigFile;
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  const next = unsetConfigText(text, k);
  if (next === text) {
    logger.info(`${k} is not set in ${file}; nothing to do`);
  } else {
    writeFileAtomic(file, next, 0o600);
    const def = KEY_SPECS.get(k)!.default;
    logger.success(`${k} removed from ${file} (the default: ${def === "" ? "automatic" : JSON.stringify(def)})`);
  }
  const src = config?.sources[k];
  if (src && (src.kind === "flag" || src.kind === "env" || src.kind === "file" || src.kind === "project")) logger.warn(`${describeSource(src)} still sets it`);
}

/** What is wrong with a config file's text, one line per problem ("line 3: ..."); [] when it is valid. */
export function checkConfigText(text: string): string[] {
  const parsed = parseConfigText(text);
  const problems = parsed.malformed.map((m) => ({ line: m.line, text: `not KEY="value": ${m.text}` }));
  for (const e of parsed.entries) {
    const spec = KEY_SPECS.get(e.key);
    if (!spec) {
      const near = closest(e.key, [...KEY_SPECS.keys()]);
      problems.push({ line: e.line, text: `unknown setting ${e.key}${near ? ` (did you mean ${near}?)` : ""}` });
    } else if (!parseValue(spec, e.value).ok) problems.push({ line: e.line, text: `invalid ${e.key} ${JSON.stringify(e.value)}: expected ${describeAllowed(spec)}` });
  }
  return problems.sort((a, b) => a.line - b.line).map((p) => `line ${p.line}: ${p.text}`);
}

export interface EditOptions {
  env?: Record<string, string | undefined>;
  /** Offer to edit again after a rejected save (default: on a terminal). */
  interactive?: boolean;
  confirm?: (question: string) => Promise<boolean>;
}

/**
 * `config edit`: open $VISUAL / $EDITOR (else vi) on a private temporary copy of the user file; when the editor exits,
 * check the copy: valid -> it replaces the file atomically; invalid -> the file is kept as it was, the problems are
 * listed, and on a terminal the copy can be edited again (else it is kept beside the config as config.rejected).
 */
export async function runEdit(paths: ResolvedPaths, opts: EditOptions = {}): Promise<void> {
  const env = opts.env ?? process.env;
  const editor = (env.VISUAL || env.EDITOR || "vi").trim();
  const interactive = opts.interactive ?? isInteractive(env);
  const confirm = opts.confirm ?? (async (q: string) => (await logger.prompt(q, { type: "confirm", initial: true, cancel: "null" })) === true);
  const file = paths.userConfigFile;
  const original = existsSync(file) ? readFileSync(file, "utf8") : renderUserConfigTemplate();
  const dir = mkdtempSync(join(tmpdir(), "flashchat-config-"));
  const copy = join(dir, "config");
  writeFileSync(copy, original, { mode: 0o600 });
  try {
    for (;;) {
      let code: number;
      try {
        code = await Bun.spawn([...editor.split(/\s+/), copy], { stdio: ["inherit", "inherit", "inherit"], env: env as Record<string, string> }).exited;
      } catch (e) {
        throw new UserError(`cannot start the editor "${editor}": ${(e as Error).message}`, "set VISUAL or EDITOR to your editor, e.g. EDITOR=nano");
      }
      if (code !== 0) throw new UserError(`the editor (${editor}) exited with status ${code}: ${file} is unchanged`);
      const text = readFileSync(copy, "utf8");
      if (text === original) return logger.info(`no changes: ${file} is as it was`);
      const problems = checkConfigText(text);
      if (!problems.length) {
        writeFileAtomic(file, text, 0o600);
        return logger.success(`saved ${file}`);
      }
      logger.error(`the edited config has ${problems.length === 1 ? "a problem" : `${problems.length} problems`}; ${file} is unchanged`);
      for (const p of problems) logger.info(`  ${p}`);
      if (interactive && (await confirm("Edit it again?"))) continue;
      const rejected = join(paths.configDir, "config.rejected");
      writeFileAtomic(rejected, text, 0o600);
      throw new UserError(`not saved: ${file} is unchanged`, `your edit is kept in ${rejected}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What `config --full-reset` deletes: config (and a rejected edit), sessions, chat history, logs, pid file. Never models or artifacts. */
export function fullResetTargets(paths: ResolvedPaths): string[] {
  return [paths.userConfigFile, join(paths.configDir, "config.rejected"), paths.sessionsDir, join(paths.configDir, "chat-history"), paths.logsDir, paths.pidFile];
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
export async function repairConfig(action: { set?: { key: unknown; value: unknown }; reset?: boolean; fullReset?: boolean; yes?: boolean; wizard?: WizardOptions }): Promise<void> {
  const paths = resolvePaths();
  if (action.fullReset) return runFullReset(paths, { yes: Boolean(action.yes) });
  if (action.reset) return runWizard(paths, undefined, action.wizard);
  runSet(paths, action.set?.key, action.set?.value);
}
