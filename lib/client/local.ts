// Our local server as a client sees it: is one running (pid file, /health), make sure one with the model runs
// (use it, wait while it loads, or start it in the background), stop it, and prompt's private server.
import { resolve } from "pathe";
import type { ResolvedConfig } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { elapsedMs, logger, logStep, say } from "../log.ts";
import { resolveDefaultModel } from "../model/choices.ts";
import { type ModelTarget, resolveModelTarget } from "../model/target.ts";
import { readPidFile } from "../process/pid-file.ts";
import { readServerState, type ServerState, startServerInBackground, stopBackgroundServer, type StopResult } from "../process/server-control.ts";
import { askYesNo, canAskOnStderr } from "../term.ts";
import { type Client, createClient } from "./api.ts";

/** KEEP_ALIVE of a server chat or prompt starts in the background when the setting is empty (as Ollama's 5 minutes). */
export const AUTO_KEEP_ALIVE_S = 300;

/** The API key a server may require (API_KEY, i.e. FLASHCHAT_API_KEY or the config files). */
export const resolveApiKey = (config: Pick<ResolvedConfig, "apiKey">): string | undefined => config.apiKey || undefined;

/**
 * resolveDefaultModel for a command (chat, prompt, serve, status, the menu): with MODEL_REPO not configured, the
 * model a running server has loaded, else the one set up here. Says which on stderr (`say`; none: silent).
 */
export async function useDefaultModel(config: ResolvedConfig, say: ((line: string) => void) | null = (l) => logger.info(l)): Promise<ResolvedConfig> {
  const source = config.sources.MODEL_REPO;
  if (source && source.kind !== "default") return config; // configured: nothing to read
  const state = await readServerState(config);
  // a running server is what answers anyway: name its model when it is one of ours, else leave MODEL_REPO be
  if (state.running && !state.artifactsDir) return config;
  const r = resolveDefaultModel(config, { loadedArtifactsDir: state.running ? state.artifactsDir : undefined });
  if (r.note && say) say(r.note);
  return r.config;
}

/** Does the running server serve `target`? Its artifacts folder decides (older servers: its model id). */
export function serverHasModel(state: Pick<ServerState, "model" | "artifactsDir">, target: Pick<ModelTarget, "id" | "repo" | "artifactsDir">): boolean {
  if (state.artifactsDir) return resolve(state.artifactsDir) === resolve(target.artifactsDir);
  return state.model !== undefined && [target.id, target.repo].includes(state.model);
}

export interface ModelCheckOptions {
  /** The command the user ran, for the way out we print ("chat", "prompt", "serve"). */
  command: string;
  /** A terminal to ask on (default: stdin and stderr are terminals and CI is not set). */
  interactive?: boolean;
  /** Ask the question (default: askYesNo on the terminal). */
  ask?: (question: string) => Promise<boolean>;
  say?: (line: string) => void;
  /** The server state when already read. */
  state?: ServerState;
}

/**
 * The running server has another model loaded than the one asked for (--model, FLASHCHAT_MODEL_REPO or a config
 * file; the default model takes whatever runs): on a terminal ask to restart it with the asked one, else fail
 * naming both and the commands to run. "restart": the server was stopped, start one with the asked model;
 * "same": use the running one (or none runs). A model that does not resolve (a missing folder) fails first.
 */
export async function checkLoadedModel(config: ResolvedConfig, opts: ModelCheckOptions): Promise<"same" | "restart"> {
  const target = resolveModelTarget(config);
  const state = opts.state ?? (await readServerState(config));
  if (!state.running || config.sources.MODEL_REPO?.kind === "default" || config.sources.MODEL_REPO === undefined) return "same";
  if (serverHasModel(state, target)) return "same";
  const loaded = state.model ?? "another model";
  const wanted = target.id;
  const ours = state.pid !== null && readPidFile(config.paths.pidFile)?.pid === state.pid;
  if (!ours) {
    throw new UserError(
      `the server at ${state.url} has ${loaded} loaded, not ${wanted}, and was started in the foreground`,
      `stop it where it runs (Ctrl-C) and run the command again, or use the loaded model: flashchat ${opts.command} --model ${loaded}`,
    );
  }
  const interactive = opts.interactive ?? canAskOnStderr();
  if (!interactive) {
    throw new UserError(
      `the running server (pid ${state.pid}, port ${state.port}) has ${loaded} loaded, not ${wanted}`,
      `restart it with ${wanted}: flashchat serve --stop && flashchat ${opts.command} --model ${wanted}   (or use the loaded one: --model ${loaded})`,
    );
  }
  const yes = await (opts.ask ?? askYesNo)(`${loaded} is loaded; restart the server with ${wanted}? [y/N]`);
  if (!yes) throw new UserError(`${loaded} is loaded, not ${wanted}; nothing changed`, `use the loaded model with --model ${loaded}, or stop it: flashchat serve --stop`);
  const stopped = await stopBackgroundServer(config);
  (opts.say ?? ((l: string) => process.stderr.write(`${l}\n`)))(stopped.message);
  return "restart";
}

export interface ServerStatus {
  running: boolean;
  /** /health said ok. */
  healthy: boolean;
  baseUrl: string;
  model?: string;
  /** One line for people: "running at http://127.0.0.1:8000 (ok)". */
  summary: string;
}

/** Is a server running at the configured address (or the one our pid file names), and is it ready? */
export async function loadServerStatus(config: ResolvedConfig): Promise<ServerStatus> {
  const state = await readServerState(config);
  const baseUrl = state.url;
  if (!state.running) return { running: false, healthy: false, baseUrl, summary: `not running (port ${config.serverPort})` };
  return {
    running: true,
    healthy: state.healthy,
    baseUrl,
    model: state.model,
    summary: `running at ${baseUrl} (${state.status ?? "not answering"}${state.pid ? `, pid ${state.pid}` : ""})`,
  };
}

export interface EnsureServerOptions {
  /** Start the server when none answers (default true). */
  autoStart?: boolean;
  /** --config FILE given to the command, passed on to the server it starts. */
  configFile?: string;
  /** --model given to the command, passed on to the server it starts. */
  model?: string;
  /** --context given to the command, passed on to the server it starts. */
  context?: string;
  /** Make sure the model is ready before starting a server (lib/setup ensureReady: asks once, or --yes). */
  prepare?: () => Promise<unknown>;
  /** Status lines go here (default stderr). */
  say?: (line: string) => void;
  /** How long to wait for a server that says "loading" (default 15 minutes: big models load slowly). */
  loadTimeoutMs?: number;
  /** Bearer token (default API_KEY). */
  apiKey?: string;
  /** The command the user ran ("chat"), for messages about a server with another model (default "chat"). */
  command?: string;
  /** Ask before restarting a server that has another model loaded (default: askYesNo on a terminal). */
  ask?: (question: string) => Promise<boolean>;
}

export interface LocalServer {
  client: Client;
  /** The model it serves. */
  model?: string;
  /** false: one was running already. */
  started: boolean;
}

/** Make sure a server runs and is ready: use a healthy one, wait for a loading one, or start one in the background. */
export async function ensureServer(config: ResolvedConfig, opts: EnsureServerOptions = {}): Promise<LocalServer> {
  const started0 = elapsedMs();
  const tell = opts.say ?? say;
  const apiKey = opts.apiKey ?? resolveApiKey(config);
  let state = await readServerState(config);
  if (state.running && (await checkLoadedModel(config, { command: opts.command ?? "chat", ask: opts.ask, say: tell, state })) === "restart") state = await readServerState(config);
  let baseUrl = state.url;
  let started = false;
  if (!state.running) {
    if (opts.autoStart === false) throw new UserError(`no server answers at ${baseUrl}`, "start it with: flashchat serve");
    await opts.prepare?.();
    const { checkContextSize } = await import("../server/foreground.ts");
    checkContextSize(config);
    tell(`the server is not running; starting it in the background (model ${opts.model ?? config.modelRepo})`);
    const bg = await startServerInBackground(config, {
      host: config.serverHost,
      port: config.serverPort,
      // the model resolved here goes along (a default model picked because it is set up, too)
      forwardArgs: [
        ...(opts.configFile ? ["--config", opts.configFile] : []),
        "--model",
        opts.model ?? config.modelRepo,
        ...(opts.context ? ["--context", opts.context] : []),
        // a server started for chat or prompt unloads the model when idle (KEEP_ALIVE, else AUTO_KEEP_ALIVE_S)
        "--keep-alive",
        String(config.keepAlive ?? AUTO_KEEP_ALIVE_S),
      ],
      timeoutMs: opts.loadTimeoutMs,
      say: tell,
    });
    baseUrl = bg.url;
    started = bg.started;
  }
  const client = createClient(baseUrl, { apiKey });
  let health = await client.health();
  const deadline = Date.now() + (opts.loadTimeoutMs ?? 15 * 60_000);
  let said = false;
  while (health?.status === "loading" && Date.now() < deadline) {
    if (!said) tell("the server is loading the model…");
    said = true;
    await Bun.sleep(250);
    health = await client.health();
  }
  if (!health) throw new UserError(`the server at ${baseUrl} does not answer`, `see its log: ${config.serverLogPath}`);
  if (health.status !== "ok") throw new UserError(`the server at ${baseUrl} is not ready (${health.status})`, `see its log: ${config.serverLogPath}`);
  const model = await client.loadedModel(health);
  logStep(`server: ${started ? "started" : "reusing the one running"} at ${baseUrl} (model ${model ?? "?"})`, started0);
  return { client, model, started };
}

/** For chat: a link whose ensure() runs ensureServer each time it is needed (first message, after the server went away). */
export function createServerLink(config: ResolvedConfig, opts: EnsureServerOptions = {}) {
  return {
    async ensure() {
      const s = await ensureServer(config, opts);
      return { baseUrl: s.client.url, model: s.model, started: s.started };
    },
  };
}

/** Stop our background server (never anything else). */
export const stopServer = (config: ResolvedConfig, opts: { timeoutMs?: number } = {}): Promise<StopResult> => stopBackgroundServer(config, opts);

export interface PrivateServer {
  client: Client;
  model?: string;
  stop(): Promise<void>;
}

/**
 * prompt's private server when none is running: lib/server's app, engine and all, in this process on a free
 * loopback port, stopped as soon as the reply is done (nothing is left running, no pid file).
 */
export async function startPrivateServer(config: ResolvedConfig): Promise<PrivateServer> {
  // imported here so `prompt` against a running server never loads the server code
  const { startConfiguredServer } = await import("../server/foreground.ts");
  say(`no server is running: loading ${config.modelRepo} for this reply…`);
  const started = elapsedMs();
  // one reply, one client: the prompt is tokenized on the event loop (no worker loading a second tokenizer)
  const server = await startConfiguredServer({ ...config, serverHost: "127.0.0.1", serverPort: 0 }, { promptWorkers: 0 });
  logStep("private server: ready", started);
  // the private server requires API_KEY like any other, so the client sends it
  const client = createClient(server.url, { apiKey: resolveApiKey(config) });
  return { client, model: (await client.loadedModel()) ?? config.modelRepo, stop: () => server.stop(0) };
}
