// How chat and the menu find the local server (pid file, /health) and start it in the background when needed
// (lib/process: detached scripts/serve.ts, pid file, a spinner until /health says ok).
import { join } from "pathe";
import type { ResolvedConfig } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import type { ServerLink } from "./chat.ts";
import { readServerState, startServerInBackground } from "../process/server-control.ts";
import { loadHealth, loadModelId } from "./client.ts";

export interface ServerStatus {
  running: boolean;
  /** /health said ok. */
  healthy: boolean;
  baseUrl: string;
  model?: string;
  /** One line for people: "running at http://127.0.0.1:8000 (ok)". */
  summary: string;
}

export async function loadServerStatus(config: ResolvedConfig): Promise<ServerStatus> {
  const state = await readServerState(config);
  const baseUrl = state.url;
  if (!state.running) return { running: false, healthy: false, baseUrl, summary: `not running (port ${config.serverPort})` };
  const health = state.status ? await loadHealth(baseUrl, 1500) : undefined;
  return {
    running: true,
    healthy: state.healthy,
    baseUrl,
    model: typeof health?.model === "string" ? health.model : undefined,
    summary: `running at ${baseUrl} (${state.status ?? "not answering"}${state.pid ? `, pid ${state.pid}` : ""})`,
  };
}

/** `flashchat <args>` as a child sharing the terminal; resolves with its exit code. */
export async function runFlashchat(args: string[], opts: { stdout?: "inherit" | "ignore" } = {}): Promise<number> {
  const cli = join(import.meta.dir, "..", "..", "scripts", "flashchat.ts");
  const proc = Bun.spawn([process.execPath, cli, ...args], {
    stdin: "inherit",
    // the child's messages are status, never chat output: keep them on stderr
    stdout: opts.stdout ?? "inherit",
    stderr: "inherit",
  });
  return proc.exited;
}

export interface ServerLinkOptions {
  /** Start the server when none answers (default true). */
  autoStart?: boolean;
  /** --config FILE given to chat, passed on to the server it starts. */
  configFile?: string;
  /** --model given to chat, passed on to the server it starts. */
  model?: string;
  /** Make sure the model is ready before starting a server (lib/setup ensureReady: asks once, or --yes). */
  prepare?: () => Promise<unknown>;
  /** Status lines go here (default stderr). */
  say?: (line: string) => void;
  /** How long to wait for a server that says "loading" (default 15 minutes: big models load slowly). */
  loadTimeoutMs?: number;
  /** Bearer token for /v1/models on a server that requires one. */
  apiKey?: string;
  /** --context given to chat: forwarded to a server started here. */
  context?: string;
}

/** The API key a server may require (API_KEY, i.e. FLASHCHAT_API_KEY or the config files). */
export const resolveApiKey = (config: ResolvedConfig): string | undefined => config.apiKey || undefined;

/** A ServerLink for chat: use a healthy server, wait for a loading one, or start one in the background. */
export function createServerLink(config: ResolvedConfig, opts: ServerLinkOptions = {}): ServerLink {
  const say = opts.say ?? ((l: string) => process.stderr.write(`${l}\n`));
  return {
    async ensure() {
      const state = await readServerState(config);
      let baseUrl = state.url;
      let startedHere = false;
      if (!state.running) {
        if (opts.autoStart === false) throw new UserError(`no server answers at ${baseUrl}`, "start it with: flashchat serve");
        await opts.prepare?.();
        const { checkContextSize } = await import("../server/foreground.ts");
        checkContextSize(config);
        say(`the server is not running; starting it in the background (model ${config.modelRepo})`);
        const started = await startServerInBackground(config, {
          host: config.serverHost,
          port: config.serverPort,
          forwardArgs: [...(opts.configFile ? ["--config", opts.configFile] : []), ...(opts.model ? ["--model", opts.model] : []), ...(opts.context ? ["--context", opts.context] : [])],
          timeoutMs: opts.loadTimeoutMs,
          say,
        });
        baseUrl = started.url;
        startedHere = started.started;
      }
      let health = await loadHealth(baseUrl);
      const deadline = Date.now() + (opts.loadTimeoutMs ?? 15 * 60_000);
      let said = false;
      while (health?.status === "loading" && Date.now() < deadline) {
        if (!said) say("the server is loading the model…");
        said = true;
        await Bun.sleep(250);
        health = await loadHealth(baseUrl);
      }
      if (!health) throw new UserError(`the server at ${baseUrl} does not answer`, `see its log: ${config.serverLogPath}`);
      if (health.status !== "ok") throw new UserError(`the server at ${baseUrl} is not ready (${health.status})`, `see its log: ${config.serverLogPath}`);
      const model = (typeof health.model === "string" ? health.model : undefined) ?? (await loadModelId(baseUrl, opts.apiKey));
      return { baseUrl, model, started: startedHere };
    },
  };
}
