// The one config layer: reads the six sources with c12 (files in the bash tool's KEY="value" format),
// merges them with defu in precedence order, validates every value and derives paths.
//   flags > FLASHCHAT_<KEY> env > --config FILE > ./flashchat.config > user config > defaults
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { defu } from "defu";
import { dirname, isAbsolute, join, resolve } from "pathe";
import { ConfigError } from "../errors.ts";
import { expandHome, writeFileAtomic } from "../fs.ts";
import { elapsedMs, logger, logStep } from "../log.ts";
import { parseConfigText } from "./legacy-file.ts";
import {
  type ConfigKey,
  type ConfigValue,
  type FlashchatConfig,
  KEY_NAMES,
  KEY_SPECS,
  KEYS,
  type ResolvedConfig,
  type ResolvedPaths,
  type SourceKind,
  type ValueSource,
} from "./schema.ts";
import { renderUserConfigTemplate } from "./template.ts";
import { closest, describeAllowed, parseValue } from "./validate.ts";

export * from "./schema.ts";
export { formatValue } from "./validate.ts";

export interface LoadOptions {
  /** Values given on the command line, by KEY; undefined = not given (falls through to lower sources). */
  overrides?: FlashchatConfig;
  /** How each override was spelled, for messages: { SERVER_PORT: "--port" }. */
  flagNames?: Partial<Record<ConfigKey, string>>;
  /** --config FILE */
  configFile?: string;
  /** Folder whose ./flashchat.config is read; default process.cwd(). */
  cwd?: string;
  /** Environment; default process.env. */
  env?: Record<string, string | undefined>;
  /** Create the user config from the template when it is missing (default true). */
  createUserConfig?: boolean;
  /** Where warnings go (unknown keys, malformed lines, a user config that cannot be made); default logger.warn. */
  warn?: (message: string) => void;
}

interface FileLayer {
  kind: Extract<SourceKind, "file" | "project" | "user">;
  path: string;
  values: Record<string, string>;
  lines: Record<string, number>;
}

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface (huggingface_hub's rule). */
export function resolveHfHome(env: Record<string, string | undefined>, home = env.HOME || homedir()): string {
  return env.HF_HOME || join(env.XDG_CACHE_HOME || join(home, ".cache"), "huggingface");
}

/** The hub cache folder: $HF_HUB_CACHE, else <HF home>/hub. */
export const resolveHfCacheDir = (env: Record<string, string | undefined>, home?: string): string => env.HF_HUB_CACHE || join(resolveHfHome(env, home), "hub");

/** Paths derived from HOME, XDG_* and HF_* alone (no config needed). */
export function resolvePaths(env: Record<string, string | undefined> = process.env, cwd = process.cwd()): ResolvedPaths {
  const home = env.HOME || homedir();
  const configDir = join(env.XDG_CONFIG_HOME || join(home, ".config"), "flashchat");
  const dataDir = join(env.XDG_DATA_HOME || join(home, ".local", "share"), "flashchat");
  return {
    configDir,
    userConfigFile: join(configDir, "config"),
    projectConfigFile: join(resolve(cwd), "flashchat.config"),
    pidFile: join(configDir, "server.pid"),
    sessionsDir: join(configDir, "sessions"),
    logsDir: join(configDir, "logs"),
    legacySessionsDir: join(home, ".flashchat", "sessions"),
    dataDir,
    cacheDir: join(env.XDG_CACHE_HOME || join(home, ".cache"), "flashchat"),
    hfCacheDir: resolveHfCacheDir(env, home),
  };
}

/** Read one config file; unknown keys and malformed lines are warnings naming file and line. */
export function loadConfigFile(path: string, kind: FileLayer["kind"], warn: (message: string) => void = (m) => logger.warn(m)): FileLayer {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  const parsed = parseConfigText(text);
  const layer: FileLayer = { kind, path, values: {}, lines: {} };
  for (const m of parsed.malformed) warn(`${path}:${m.line}: ignoring a line that is not KEY=value: ${m.text}`);
  for (const e of parsed.entries) {
    if (!KEY_SPECS.has(e.key)) {
      const near = closest(e.key, KEY_NAMES);
      warn(`${path}:${e.line}: unknown setting ${e.key}${near ? ` (did you mean ${near}?)` : ""}; it is ignored`);
      continue;
    }
    layer.values[e.key] = e.value;
    layer.lines[e.key] = e.line;
  }
  return layer;
}

/** Load every source, merge, validate and derive: the ResolvedConfig every command works from. */
export async function loadFlashchatConfig(opts: LoadOptions = {}): Promise<ResolvedConfig> {
  const started = elapsedMs();
  const env = opts.env ?? process.env;
  const cwd = resolve(opts.cwd ?? process.cwd());
  const paths = resolvePaths(env, cwd);

  const warn = opts.warn ?? ((m: string) => logger.warn(m));
  if (opts.createUserConfig !== false) setupUserConfig(paths.userConfigFile, {}, warn);

  const explicit = opts.configFile ? resolve(cwd, expandHome(opts.configFile, env)) : undefined;
  if (explicit && !existsSync(explicit)) {
    throw new ConfigError(`config file not found: ${explicit}`, "check the path given to --config");
  }
  const fileLayers: FileLayer[] = [];
  const layerOf = new Map<string, FileLayer>();
  const readLayer = (path: string, kind: FileLayer["kind"]) => {
    const layer = loadConfigFile(path, kind, warn);
    fileLayers.push(layer);
    layerOf.set(path, layer);
    return layer;
  };

  const flags = definedOnly(opts.overrides ?? {});
  const envValues: Record<string, string> = {};
  for (const key of KEY_NAMES) {
    const v = env[`FLASHCHAT_${key}`];
    if (v !== undefined) envValues[key] = v;
  }
  const extendsFiles = [paths.projectConfigFile, paths.userConfigFile].filter(
    (p) => p !== explicit && existsSync(p),
  );

  // c12: the --config file is the main layer, the project and user files are `extends` layers
  // (in that order), flags + env are overrides; our resolver reads the KEY="value" format.
  // c12 is imported here, when a config is read (`--version` and `--help` never load it)
  const { loadConfig } = await import("c12");
  const { config: merged } = await loadConfig<Record<string, unknown>>({
    name: "flashchat",
    cwd,
    configFile: explicit ?? join(cwd, ".flashchat-no-main-config"),
    rcFile: false,
    globalRc: false,
    packageJson: false,
    dotenv: false,
    giget: false,
    envName: false,
    overrides: { ...defu(flags, envValues), extends: extendsFiles },
    resolve: (source) => {
      const path = source === "." ? explicit : resolve(cwd, source);
      const base = { cwd, source, sourceOptions: {} };
      if (!path) return { ...base, config: {} };
      const layer = readLayer(path, source === "." ? "file" : path === paths.projectConfigFile ? "project" : "user");
      return { ...base, config: { ...layer.values }, configFile: path, _configFile: path };
    },
    defaults: Object.fromEntries(KEYS.map((k) => [k.key, k.default])),
  });

  const sources: Record<string, ValueSource> = {};
  const values: Record<string, ConfigValue> = {};
  const ordered = [explicit, ...extendsFiles].flatMap((p) => (p && layerOf.has(p) ? [layerOf.get(p)!] : []));
  for (const spec of KEYS) {
    const key = spec.key;
    let source: ValueSource;
    let fileDir = cwd;
    if (key in flags) source = { kind: "flag", where: opts.flagNames?.[key as ConfigKey] ?? "command line" };
    else if (key in envValues) source = { kind: "env", where: `FLASHCHAT_${key}` };
    else {
      const layer = ordered.find((l) => key in l.values);
      if (layer) {
        source = { kind: layer.kind, where: `${layer.path}:${layer.lines[key]}` };
        fileDir = dirname(layer.path);
      } else source = { kind: "default", where: "default" };
    }
    const raw = merged[key] as ConfigValue;
    const parsed = parseValue(spec, raw);
    if (!parsed.ok) {
      throw new ConfigError(
        `invalid ${key} ${JSON.stringify(String(raw))} (from ${describeSource(source)}): expected ${parsed.allowed}`,
      );
    }
    let value = parsed.value;
    if (spec.type === "path" && typeof value === "string" && value !== "") {
      value = resolve(fileDir, expandHome(value, env));
    }
    values[key] = value;
    sources[key] = source;
  }
  const filesRead = fileLayers.map((l) => l.path);
  const fromEnv = Object.keys(envValues).map((k) => `FLASHCHAT_${k}`);
  logStep(`config: ${[...filesRead, ...fromEnv, ...(Object.keys(flags).length ? ["command-line flags"] : [])].join(", ") || "defaults only"}`, started);
  return resolveConfig(values, paths, sources, filesRead, env);
}

/** Fill derived values (default paths) from validated values. Which folders a model uses is lib/model's business. */
export function resolveConfig(
  values: Record<string, ConfigValue>,
  paths: ResolvedPaths,
  sources: Record<string, ValueSource>,
  filesRead: string[],
  env: Record<string, string | undefined> = process.env,
): ResolvedConfig {
  return {
    modelRepo: String(values.MODEL_REPO),
    modelPath: String(values.MODEL_PATH ?? ""),
    quantization: values.QUANTIZATION as "4bit" | "2bit",
    maxTokens: values.MAX_TOKENS as number | null,
    temperature: values.TEMPERATURE as number,
    topP: values.TOP_P as number,
    seed: values.SEED as number | null,
    serverPort: values.SERVER_PORT as number,
    serverHost: String(values.SERVER_HOST),
    serverLogPath: (values.SERVER_LOG_PATH as string) || join(paths.logsDir, "server.log"),
    serverReasoning: values.SERVER_REASONING as ResolvedConfig["serverReasoning"],
    serverCachePersist: values.SERVER_CACHE_PERSIST as boolean,
    apiKey: String(values.API_KEY ?? ""),
    engineWatchdogS: values.ENGINE_WATCHDOG_S as number,
    keepAlive: values.KEEP_ALIVE as number | null,
    serverDebug: values.SERVER_DEBUG as boolean,
    serverHttpLog: values.SERVER_HTTP_LOG as boolean,
    showThinking: values.SHOW_THINKING as boolean,
    colorOutput: (values.COLOR_OUTPUT as boolean) && !("NO_COLOR" in env && env.NO_COLOR !== ""),
    tuiTheme: values.TUI_THEME as ResolvedConfig["tuiTheme"],
    artifactsDir: (values.ARTIFACTS_DIR as string) || join(paths.dataDir, "models"),
    expertsDir: (values.EXPERTS_DIR as string) || "",
    activeExperts: values.ACTIVE_EXPERTS as number | null,
    threads: values.THREADS as number | null,
    contextSize: values.CONTEXT_SIZE as number,
    kvCacheType: values.KV_CACHE_TYPE as ResolvedConfig["kvCacheType"],
    backend: values.BACKEND as ResolvedConfig["backend"],
    paths,
    sources,
    filesRead,
  };
}

/** Check one value as `config set` would; returns the text to write or throws a ConfigError. */
export function validateSetting(key: string, value: string): string {
  const spec = KEY_SPECS.get(key);
  if (!spec) {
    const near = closest(key, KEY_NAMES);
    throw new ConfigError(`unknown setting ${key}${near ? ` (did you mean ${near}?)` : ""}`, "`flashchat config` lists every setting");
  }
  const parsed = parseValue(spec, value);
  if (!parsed.ok) throw new ConfigError(`invalid ${key} ${JSON.stringify(value)}: expected ${describeAllowed(spec)}`);
  return value.trim();
}

/** Create the user config file from its commented template if it does not exist yet. */
export function setupUserConfig(file: string, values: Record<string, string> = {}, warn: (message: string) => void = (m) => logger.warn(m)): boolean {
  if (existsSync(file)) return false;
  try {
    writeFileAtomic(file, renderUserConfigTemplate(values), 0o600);
    return true;
  } catch (e) {
    warn(`could not create ${file}: ${(e as Error).message}`);
    return false;
  }
}

export function describeSource(s: ValueSource): string {
  switch (s.kind) {
    case "flag":
      return s.where === "command line" ? "the command line" : `flag ${s.where}`;
    case "env":
      return `environment variable ${s.where}`;
    case "default":
      return "the default";
    default:
      return s.where;
  }
}

function definedOnly(o: FlashchatConfig): Record<string, ConfigValue> {
  const out: Record<string, ConfigValue> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    if (!KEY_SPECS.has(k)) throw new Error(`bug: override for unknown key ${k}`);
    out[k] = v;
  }
  return out;
}

export const isAbsolutePath = isAbsolute;
