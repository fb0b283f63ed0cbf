// The server as a long-running process (scripts/serve.ts): config -> model target -> startServer, then wait for
// SIGTERM / SIGINT and shut down gracefully (finish or cancel streams, stop the engine, exit 0).
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "pathe";
import type { ResolvedConfig } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { elapsedMs, logStep, say } from "../log.ts";
import { resolveModelTarget, serverSampling } from "../model/target.ts";
import { resolveFreePort } from "../process/server-control.ts";
import { type RunningServer, startServer } from "./app.ts";
import { ApiBindError, checkBindSafety } from "./origin.ts";
import type { ReasoningFormat } from "./validate.ts";

export interface ForegroundOptions {
  insecure?: boolean;
  /** FLASHCHAT_API_KEY */
  apiKey?: string;
  /** Accept force_text / force_tokens in requests (tests). */
  testHooks?: boolean;
  reasoningFormat?: ReasoningFormat;
  /** Keep prompt-cache snapshots across restarts in this file. */
  snapshotFile?: string;
  /** Seconds to let in-flight streams finish on SIGTERM before cancelling them (default 5; none for a silent engine). */
  graceSeconds?: number;
  /** Print request lines on stderr too (a terminal). */
  echo?: boolean;
  /** Idle seconds before the engine is unloaded (--keep-alive; default KEEP_ALIVE, unset: never). */
  keepAliveS?: number;
  /** Prompt workers (default 1; 0 tokenizes on the event loop: one client, one tokenizer load fewer). */
  promptWorkers?: number;
}

/** The model's maximum context (max_position_embeddings of its prepared weights), or undefined when not prepared. */
export function modelMaxContext(artifactsDir: string): number | undefined {
  const file = join(artifactsDir, "model_weights.json");
  if (!existsSync(file)) return undefined;
  const max = (JSON.parse(readFileSync(file, "utf8")) as { config?: { max_position_embeddings?: unknown } }).config?.max_position_embeddings;
  return typeof max === "number" && max > 0 ? max : undefined;
}

/** CONTEXT_SIZE above the model's maximum is a usage error (exit 2) naming both numbers and where the setting came from. */
export function checkContextSize(config: ResolvedConfig): void {
  if (!config.contextSize) return;
  const target = resolveModelTarget(config);
  const max = modelMaxContext(target.artifactsDir);
  if (max !== undefined && config.contextSize > max) {
    const where = config.sources.CONTEXT_SIZE?.where ?? "CONTEXT_SIZE";
    throw new UserError(
      `CONTEXT_SIZE ${config.contextSize} (${where}) is larger than the maximum context of ${target.id}: ${max} tokens`,
      `use at most ${max}, or 0 for the model's maximum`,
      2,
    );
  }
}

/** The bind rule for a configured server (SERVER_HOST, FLASHCHAT_API_KEY, --insecure) as a user error. */
export function checkConfiguredBind(host: string, apiKey: string | undefined, insecure: boolean): void {
  try {
    checkBindSafety(host, apiKey, insecure);
  } catch (e) {
    if (e instanceof ApiBindError) throw new UserError(e.message, "e.g. FLASHCHAT_API_KEY=$(openssl rand -hex 16) flashchat serve --host 0.0.0.0");
    throw e;
  }
}

/** Start the server from the config and resolve once it is serving (engine ready). Rejects with a UserError otherwise. */
export async function startConfiguredServer(config: ResolvedConfig, opts: ForegroundOptions = {}): Promise<RunningServer> {
  const started = elapsedMs();
  opts = { ...opts, apiKey: opts.apiKey ?? (config.apiKey || undefined), reasoningFormat: opts.reasoningFormat ?? config.serverReasoning };
  const host = config.serverHost;
  checkConfiguredBind(host, opts.apiKey, opts.insecure ?? false);
  const port = await resolveFreePort(host, config.serverPort);
  const target = resolveModelTarget(config);
  if (!existsSync(join(target.artifactsDir, "model_weights.json")))
    throw new UserError(`the model ${target.id} is not prepared (no ${join(target.artifactsDir, "model_weights.json")})`, `run: flashchat setup --model ${target.id}`);
  checkContextSize(config);
  const tokenizerDir = [target.checkpointDir, target.artifactsDir].find((d) => d && existsSync(join(d, "tokenizer.json")));
  if (!tokenizerDir)
    throw new UserError(`no tokenizer.json for ${target.id} (looked in ${target.checkpointDir || "(not downloaded)"} and ${target.artifactsDir})`, `run: flashchat setup --model ${target.id}`);
  const logsDir = config.paths.logsDir;
  const server = await startServer({
    host,
    port,
    modelId: target.id,
    modelAliases: target.repo !== target.id ? [target.repo] : [],
    tokenizerDir,
    engine: { artifactsDir: target.artifactsDir, expertsDir: target.expertsDir, threads: config.threads, activeExperts: target.activeExperts, context: config.contextSize || undefined, kvType: config.kvCacheType, backend: config.backend },
    apiKey: opts.apiKey,
    defaults: {
      maxTokens: target.maxTokens,
      ...serverSampling(config, target),
      reasoningFormat: opts.reasoningFormat,
      allowForceTokens: opts.testHooks ?? false,
    },
    logFile: config.serverLogPath,
    httpLogFile: config.serverHttpLog ? join(logsDir, "http.log") : undefined,
    promptLogFile: config.serverDebug ? join(logsDir, "prompts.log") : undefined,
    snapshotFile: opts.snapshotFile ?? (config.serverCachePersist ? join(config.paths.dataDir, "prompt-cache", `${basename(target.artifactsDir)}.snapshots`) : undefined),
    echoLog: opts.echo ? (line) => process.stderr.write(`${line}\n`) : undefined,
    engineWatchdogMs: config.engineWatchdogS * 1000,
    keepAliveMs: (opts.keepAliveS ?? config.keepAlive ?? 0) * 1000,
    promptWorkers: opts.promptWorkers,
    tokenizerCacheDir: config.paths.cacheDir,
  });
  logStep(`server: listening on ${server.url}`, started);
  await server.engineStarted;
  logStep(`engine: ${server.host.state === "ok" ? "loaded" : server.host.state} (${target.artifactsDir})`, started);
  if (server.host.state !== "ok" && server.host.state !== "unloaded") {
    const why = server.host.error ?? server.host.state;
    await server.stop(0);
    throw new UserError(`the engine failed to load: ${why}`, `see the log: ${config.serverLogPath}`);
  }
  return server;
}

/** Run until SIGTERM / SIGINT, then stop gracefully and exit 0 (a signal during start-up also ends it cleanly). */
export async function runForegroundServer(config: ResolvedConfig, opts: ForegroundOptions = {}): Promise<void> {
  let signalled: string | undefined;
  let onSignal: (signal: string) => void = (signal) => {
    signalled = signal;
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  const server = await startConfiguredServer(config, opts);
  say(`flashchat server: ${server.url}/v1 (model ${config.modelRepo}); Ctrl-C stops it`);
  await new Promise<void>((resolve) => {
    let stopping = false;
    onSignal = (signal) => {
      if (stopping) return;
      stopping = true;
      server.logs.info(`${signal}: stopping`);
      const graceMs = (opts.graceSeconds ?? 5) * 1000;
      // a backstop for a stop that itself hangs: kill the engine by pid and leave
      setTimeout(() => {
        server.logs.info("stopping took too long: killing the engine and exiting");
        server.host.engine?.kill("the server is exiting");
        process.exit(1);
      }, graceMs + 15_000).unref();
      void server.stop(graceMs).then(resolve);
    };
    if (signalled) onSignal(signalled);
  });
  process.exit(0);
}
