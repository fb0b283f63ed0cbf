// Our local server as a client sees it: is one running (pid file, /health), make sure one with the model runs
// (use it, wait while it loads, or start it in the background), stop it, and prompt's private server.
import type { ResolvedConfig } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { elapsedMs, logStep, say } from "../log.ts";
import { readServerState, startServerInBackground, stopBackgroundServer, type StopResult } from "../process/server-control.ts";
import { type Client, createClient } from "./api.ts";

/** The API key a server may require (API_KEY, i.e. FLASHCHAT_API_KEY or the config files). */
export const resolveApiKey = (config: Pick<ResolvedConfig, "apiKey">): string | undefined => config.apiKey || undefined;

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
  const state = await readServerState(config);
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
      forwardArgs: [...(opts.configFile ? ["--config", opts.configFile] : []), ...(opts.model ? ["--model", opts.model] : []), ...(opts.context ? ["--context", opts.context] : [])],
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
