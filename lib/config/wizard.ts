// The setup wizard (`config --reset`): one question per wizard setting, each answer checked as it is given (asked
// again with the reason), the model picked from a list; without a terminal, the defaults (keeping model and port).
import { existsSync, readFileSync } from "node:fs";
import { UserError } from "../errors.ts";
import { writeFileAtomic } from "../fs.ts";
import { logger } from "../log.ts";
import { isInteractive } from "../term.ts";
import { parseConfigText } from "./legacy-file.ts";
import { KEYS, type KeySpec, type ResolvedConfig, type ResolvedPaths } from "./schema.ts";
import { renderUserConfigTemplate } from "./template.ts";
import { describeAllowed, formatValue, parseValue } from "./validate.ts";

/** The keys the setup wizard asks about, in order. */
export const WIZARD_KEYS: readonly KeySpec[] = KEYS.filter((k) => "wizard" in k && k.wizard);

/** Kept from the user's file by a `config --reset` without a terminal (the rest goes back to the defaults). */
export const KEPT_WITHOUT_TERMINAL = ["MODEL_REPO", "SERVER_PORT"] as const;

/** One entry of the wizard's model list. */
export interface ModelChoice {
  /** What MODEL_REPO is set to. */
  value: string;
  label: string;
  /** e.g. "ready", "downloaded, not prepared", "209 GB download". */
  hint?: string;
  /** The Hugging Face repo of a registry id (a MODEL_REPO naming the repo picks this entry too). */
  repo?: string;
}

/** How the wizard asks (consola's prompts on a terminal; tests pass their own). */
export interface WizardAsker {
  text(message: string, opts: { default: string }): Promise<string>;
  select(message: string, options: readonly ModelChoice[], initial: string): Promise<string>;
  confirm(message: string, initial: boolean): Promise<boolean>;
}

/** Value typed into the model list's last entry: the model is then asked as text. */
export const OTHER_MODEL = "\0other";

/** Ctrl-C in a consola prompt (cancel: "reject"): nothing is saved, exit 130. */
function cancelled(e: unknown): never {
  if (e instanceof Error && e.name === "ConsolaPromptCancelledError") throw new UserError("setup wizard cancelled: nothing was saved", undefined, 130);
  throw e;
}

export const consolaAsker: WizardAsker = {
  text: (message, opts) => logger.prompt(message, { type: "text", default: opts.default, placeholder: opts.default, cancel: "reject" }).then((v) => String(v ?? ""), cancelled),
  select: (message, options, initial) =>
    logger
      .prompt(message, { type: "select", options: options.map((o) => ({ value: o.value, label: o.label, ...(o.hint ? { hint: o.hint } : {}) })), initial, cancel: "reject" })
      .then((v) => String(typeof v === "object" && v !== null ? (v as { value: string }).value : v), cancelled),
  confirm: (message, initial) => logger.prompt(message, { type: "confirm", initial, cancel: "reject" }).then((v) => v === true, cancelled),
};

/**
 * The answer to one question, checked: "" keeps the default; an invalid answer is said with what is allowed
 * and asked again (`say` gets the reason).
 */
export async function askSetting(spec: KeySpec, current: string, ask: WizardAsker, say: (line: string) => void, choices?: readonly ModelChoice[]): Promise<string> {
  const message = `${spec.description} (${spec.key})`;
  if (spec.type === "bool") {
    const now = parseValue(spec, current);
    return formatValue(await ask.confirm(message, now.ok && now.value === true));
  }
  if (spec.type === "enum") return ask.select(message, spec.values!.map((v) => ({ value: v, label: v })), current);
  let initial = current;
  if (spec.key === "MODEL_REPO" && choices?.length) {
    const same = (c: ModelChoice) => c.value === current || c.repo?.toLowerCase() === current.toLowerCase();
    const known = choices.find(same);
    const list = known ? choices : [{ value: current, label: current, hint: "current setting" }, ...choices];
    const picked = await ask.select(message, [...list, { value: OTHER_MODEL, label: "Another model…", hint: "a Hugging Face repo (org/name) or a local folder" }], known?.value ?? current);
    if (picked !== OTHER_MODEL) return picked;
    initial = "";
  }
  for (;;) {
    const raw = (await ask.text(message, { default: initial })).trim();
    const answer = raw === "" ? initial : raw;
    const parsed = parseValue(spec, answer);
    if (parsed.ok && !(spec.key === "MODEL_REPO" && answer === "")) return answer;
    say(`${JSON.stringify(answer)} is not a valid ${spec.key}: expected ${describeAllowed(spec)}. Try again.`);
  }
}

/** Values of `keys` in the user's config file that are valid (an invalid one is dropped, with a warning). */
export function loadKeptSettings(file: string, keys: readonly string[]): Record<string, string> {
  if (!existsSync(file)) return {};
  const kept: Record<string, string> = {};
  for (const e of parseConfigText(readFileSync(file, "utf8")).entries) {
    if (!keys.includes(e.key)) continue;
    const spec = KEYS.find((k) => k.key === e.key)!;
    if (parseValue(spec, e.value).ok && e.value.trim() !== "") kept[e.key] = e.value.trim();
    else delete kept[e.key];
  }
  return kept;
}

export interface WizardOptions {
  /** The model list (registry and installed models); none: the model is asked as text. */
  modelChoices?: readonly ModelChoice[];
  ask?: WizardAsker;
  /** Ask questions (default: stdin and stdout are a terminal and CI is not set). */
  interactive?: boolean;
}

/**
 * `config --reset`: on a terminal, ask the wizard's questions (current values as defaults), each checked as it is
 * answered; otherwise write the defaults, keeping the model and port of the user's file. Then write the user file.
 */
export async function runWizard(paths: ResolvedPaths, config?: ResolvedConfig, opts: WizardOptions = {}): Promise<void> {
  const answers: Record<string, string> = {};
  if (!(opts.interactive ?? isInteractive())) {
    const kept = loadKeptSettings(paths.userConfigFile, KEPT_WITHOUT_TERMINAL);
    const what = Object.entries(kept).map(([k, v]) => `${k}=${v}`);
    logger.info(`not a terminal: writing the default settings${what.length ? `, keeping ${what.join(" and ")}` : ""} (sessions are kept)`);
    writeWizardConfig(paths.userConfigFile, { ...Object.fromEntries(WIZARD_KEYS.map((s) => [s.key, s.default])), ...kept });
    logger.success(`settings written to ${paths.userConfigFile}`);
    return;
  }
  const ask = opts.ask ?? consolaAsker;
  for (const spec of WIZARD_KEYS) {
    const current = config ? formatValue((config as unknown as Record<string, string | number | boolean | null>)[spec.name] ?? null) : spec.default;
    answers[spec.key] = await askSetting(spec, current, ask, (l) => logger.warn(l), opts.modelChoices);
  }
  writeWizardConfig(paths.userConfigFile, answers);
  logger.success(`settings written to ${paths.userConfigFile}`);
}

/** Write a fresh user config holding the wizard's answers (other keys commented out at their defaults). */
export function writeWizardConfig(file: string, answers: Record<string, string>): void {
  for (const [k, v] of Object.entries(answers)) {
    const spec = KEYS.find((s) => s.key === k);
    if (!spec || !parseValue(spec, v).ok) throw new Error(`bug: the wizard's answer ${k}=${JSON.stringify(v)} was not checked`);
  }
  writeFileAtomic(file, renderUserConfigTemplate(answers), 0o600);
}
