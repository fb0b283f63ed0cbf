// Every setting flashchat has: its KEY (as in the config files), type, default, allowed values and help text.
// Adding a setting is one entry here; parsing, validation, `config` listing, env vars and docs follow from it.

export type ConfigValue = string | number | boolean | null;

export interface KeySpec {
  /** KEY as written in config files; the env var is FLASHCHAT_<KEY>. */
  key: string;
  /** camelCase name in ResolvedConfig. */
  name: string;
  type: "string" | "path" | "int" | "float" | "bool" | "enum";
  /** Default as it would be written in a file ("" = empty / automatic). Path defaults are derived in resolve. */
  default: string;
  description: string;
  min?: number;
  max?: number;
  values?: readonly string[];
  /** "" is allowed and means "automatic" (null in ResolvedConfig for numbers). */
  optional?: boolean;
  /** Asked by the setup wizard (`config --reset`). */
  wizard?: boolean;
  /** Shown masked by `config` (API keys). */
  secret?: boolean;
}

export const KEYS = [
  { key: "MODEL_REPO", name: "modelRepo", type: "string", default: "mlx-community/Qwen3.5-397B-A17B-4bit", description: "Model to run: Hugging Face repo (org/name), a registry id such as `demo`, or a local folder", wizard: true },
  { key: "MODEL_PATH", name: "modelPath", type: "path", default: "", optional: true, description: "Checkpoint folder; empty = find MODEL_REPO in the Hugging Face cache" },
  { key: "QUANTIZATION", name: "quantization", type: "enum", default: "4bit", values: ["4bit", "2bit"], description: "Expert precision streamed from disk" },
  { key: "MAX_TOKENS", name: "maxTokens", type: "int", default: "", optional: true, min: 1, max: 1048576, description: "Most tokens generated per reply; empty = the model's own default (8192; the demo 200)", wizard: true },
  { key: "TEMPERATURE", name: "temperature", type: "float", default: "0.7", min: 0, max: 2, description: "Sampling temperature (0 = greedy)", wizard: true },
  { key: "TOP_P", name: "topP", type: "float", default: "0.9", min: 0, max: 1, description: "Nucleus sampling threshold", wizard: true },
  { key: "SEED", name: "seed", type: "int", default: "", optional: true, min: 0, max: 9007199254740991, description: "Sampling seed for chat and prompt; empty = a new random seed for every reply (the same seed, prompt and settings give the same reply)" },
  { key: "SERVER_PORT", name: "serverPort", type: "int", default: "8000", min: 1, max: 65535, description: "Port of the local server", wizard: true },
  { key: "SERVER_HOST", name: "serverHost", type: "string", default: "127.0.0.1", description: "Address the server binds (other than loopback needs an API key)", wizard: true },
  { key: "SERVER_LOG_PATH", name: "serverLogPath", type: "path", default: "", optional: true, description: "Server log file; empty = <config dir>/logs/server.log" },
  { key: "SERVER_REASONING", name: "serverReasoning", type: "enum", default: "separate", values: ["separate", "inline", "drop"], description: "Reasoning in API replies: separate (reasoning_content), inline (<think> in content) or drop" },
  { key: "SERVER_CACHE_PERSIST", name: "serverCachePersist", type: "bool", default: "0", description: "Keep prompt-cache snapshots on disk across server restarts (1/0)" },
  { key: "API_KEY", name: "apiKey", type: "string", default: "", optional: true, secret: true, description: "Key clients must send (Authorization: Bearer); required to bind other than loopback" },
  { key: "KEEP_ALIVE", name: "keepAlive", type: "int", default: "", optional: true, min: 0, max: 31536000, description: "Unload the model after this many idle seconds; the next request loads it again (0 = never; empty = never for `flashchat serve`, 300 for a server chat or prompt starts)" },
  { key: "ENGINE_WATCHDOG_S", name: "engineWatchdogS", type: "int", default: "120", min: 0, max: 86400, description: "Kill and restart the engine when a request gets no engine output (token or prefill progress) for this many seconds; 0 = never" },
  { key: "SERVER_DEBUG", name: "serverDebug", type: "bool", default: "0", description: "Log rendered prompts (1/0)" },
  { key: "SERVER_HTTP_LOG", name: "serverHttpLog", type: "bool", default: "0", description: "Append raw HTTP traffic to logs/http.log (1/0)" },
  { key: "SHOW_THINKING", name: "showThinking", type: "bool", default: "0", description: "Show the model's reasoning in chat (1/0)", wizard: true },
  { key: "COLOR_OUTPUT", name: "colorOutput", type: "bool", default: "1", description: "Colour in the terminal (1/0; NO_COLOR also turns it off)", wizard: true },
  { key: "TUI_THEME", name: "tuiTheme", type: "enum", default: "auto", values: ["auto", "dark", "light", "plain"], description: "The full-screen TUI's colours: auto (follow the terminal's background), dark, light, or plain (no colour)" },
  { key: "ARTIFACTS_DIR", name: "artifactsDir", type: "path", default: "", optional: true, description: "Where extracted weights and packed experts live; empty = $XDG_DATA_HOME/flashchat/models" },
  { key: "EXPERTS_DIR", name: "expertsDir", type: "path", default: "", optional: true, description: "Override of the packed experts folder (e.g. on a faster disk)" },
  { key: "ACTIVE_EXPERTS", name: "activeExperts", type: "int", default: "", optional: true, min: 1, max: 1024, description: "Experts used per token (K); empty = the model's own" },
  { key: "CONTEXT_SIZE", name: "contextSize", type: "int", default: "0", min: 0, max: 2147483647, description: "Context length in tokens (KV cache); 0 = the model's maximum, lowered to what fits in memory" },
  { key: "KV_CACHE_TYPE", name: "kvCacheType", type: "enum", default: "f16", values: ["f16", "bf16", "q8", "f32"], description: "Element type of the KV cache: f16, bf16, q8 (8-bit, half the memory) or f32" },
  { key: "BACKEND", name: "backend", type: "enum", default: "auto", values: ["auto", "cpu", "metal", "metal-emu"], description: "Engine backend: auto (metal on macOS with a GPU, else cpu), cpu, metal, or metal-emu (the Metal backend on the CPU emulator, slow: for checks)" },
  { key: "THREADS", name: "threads", type: "int", default: "", optional: true, min: 1, max: 1024, description: "Engine compute threads; empty = all cores" },
] as const satisfies readonly KeySpec[];

export type ConfigKey = (typeof KEYS)[number]["key"];
export const KEY_SPECS: ReadonlyMap<string, KeySpec> = new Map(KEYS.map((k) => [k.key, k as KeySpec]));
export const KEY_NAMES: readonly string[] = KEYS.map((k) => k.key);

/** Where a value came from, highest precedence first. */
export type SourceKind = "flag" | "env" | "file" | "project" | "user" | "default";

export interface ValueSource {
  kind: SourceKind;
  /** e.g. "/home/u/.config/flashchat/config:12", "FLASHCHAT_SERVER_PORT", "--port" */
  where: string;
}

export interface ResolvedPaths {
  /** $XDG_CONFIG_HOME/flashchat (or ~/.config/flashchat) */
  configDir: string;
  userConfigFile: string;
  /** ./flashchat.config of the working directory */
  projectConfigFile: string;
  pidFile: string;
  sessionsDir: string;
  logsDir: string;
  /** ~/.flashchat/sessions (sessions written by the old bash tool) */
  legacySessionsDir: string;
  /** $XDG_DATA_HOME/flashchat */
  dataDir: string;
  /** $XDG_CACHE_HOME/flashchat (or ~/.cache/flashchat): things rebuilt when missing (the tokenizer cache) */
  cacheDir?: string;
  /** the Hugging Face hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub */
  hfCacheDir: string;
}

/** The complete, validated settings every command receives. Nobody else reads process.env for these. */
export interface ResolvedConfig {
  modelRepo: string;
  /** MODEL_PATH as given (absolute); "" = not set (lib/model finds the checkpoint: the HF cache, a folder, the demo). */
  modelPath: string;
  quantization: "4bit" | "2bit";
  /** MAX_TOKENS; null = not set: the model's own default (lib/model resolveModelTarget). */
  maxTokens: number | null;
  temperature: number;
  topP: number;
  /** SEED; null = not set: a random seed per reply (the server picks it). */
  seed: number | null;
  serverPort: number;
  serverHost: string;
  serverLogPath: string;
  serverReasoning: "separate" | "inline" | "drop";
  serverCachePersist: boolean;
  /** "" = no key required (loopback only) */
  apiKey: string;
  /** 0 = no watchdog */
  engineWatchdogS: number;
  /** KEEP_ALIVE seconds; 0 = never unload; null = not set (serve: never; a server chat or prompt starts: 300). */
  keepAlive: number | null;
  serverDebug: boolean;
  serverHttpLog: boolean;
  showThinking: boolean;
  colorOutput: boolean;
  tuiTheme: "auto" | "dark" | "light" | "plain";
  artifactsDir: string;
  /** "" = <model artifacts>/packed_experts(_2bit) */
  expertsDir: string;
  activeExperts: number | null;
  threads: number | null;
  /** 0 = the model's maximum (the engine lowers it to what fits in memory) */
  contextSize: number;
  kvCacheType: "f16" | "bf16" | "q8" | "f32";
  backend: "auto" | "cpu" | "metal" | "metal-emu";
  paths: ResolvedPaths;
  /** Per KEY: where its value came from. */
  sources: Record<string, ValueSource>;
  /** Config files that were read, in precedence order (highest first). */
  filesRead: string[];
}

/** User input: any subset of the keys, as strings (files, env, flags) or typed values (tests, code). */
export type FlashchatConfig = Partial<Record<ConfigKey, ConfigValue | undefined>>;
export const defineFlashchatConfig = (c: FlashchatConfig) => c;
