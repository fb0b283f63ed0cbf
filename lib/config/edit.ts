// Changing the user's config file: `config set`, the setup wizard (`config --reset`) and `--full-reset`.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "pathe";
import { ConfigError } from "../errors.ts";
import { writeFileAtomic } from "../fs.ts";
import { setConfigText } from "./legacy-file.ts";
import { KEYS, type ResolvedPaths } from "./schema.ts";
import { renderUserConfigTemplate } from "./template.ts";
import { validateSetting } from "./index.ts";

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
