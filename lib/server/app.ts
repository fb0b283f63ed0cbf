// The HTTP server (Bun.serve): its context (queue, logs, model, engine host), request entry, errors and stop; the handlers are in routes/.
import { existsSync, mkdirSync } from "node:fs";
import type { Server } from "bun";
import { dirname, join } from "pathe";
import { startEngine } from "../engine/client.ts";
import type { EngineStartOptions } from "../engine/types.ts";
import { type ChatTemplate, loadChatTemplate } from "./chat-template.ts";
import { createEngineHost, type EngineHost, type StartEngineFn } from "./engine-host.ts";
import { ApiError, badRequest, errorResponse, renderErrorBody } from "./errors.ts";
import type { GenerationDefaults, ModelContext } from "./generate.ts";
import { resolveRequestUrl } from "./http-guard.ts";
import { createServerLogs, type ServerLogs } from "./logs.ts";
import { createPromptPool } from "./prompt-pool.ts";
import { createRequestQueue, type RequestQueue } from "./queue.ts";
import type { ServerContext } from "./routes/context.ts";
import { route } from "./routes/router.ts";
import { createStructuredOutput, readVocab, type StructuredOutput } from "./structured-output.ts";
import { loadTokenizer, type ModelTokenizer } from "./tokenizer.ts";
import { elapsedMs, logStep } from "../log.ts";

export interface ServerOptions {
  host: string;
  /** 0 = any free port */
  port: number;
  /** The id clients send as `model` (and /v1/models lists). */
  modelId: string;
  /** Other names accepted as `model` (e.g. a registry alias). */
  modelAliases?: string[];
  /** Folder with tokenizer.json, tokenizer_config.json and/or chat_template.jinja. */
  tokenizerDir: string;
  engine: EngineStartOptions;
  /** Default: lib/engine/client.ts startEngine. */
  startEngine?: StartEngineFn;
  /** Bearer token required on every route but /health. */
  apiKey?: string;
  defaults: Omit<GenerationDefaults, "reasoningFormat" | "allowForceTokens"> & Partial<Pick<GenerationDefaults, "reasoningFormat" | "allowForceTokens">>;
  /** Requests allowed to wait for the engine while one runs (default 16). */
  maxQueue?: number;
  /** Largest request body in bytes, also for chunked bodies (default 16 MiB). */
  maxBodyBytes?: number;
  /** Seconds a connection may sit idle between requests or before its request is complete (default 30); generations are exempt. */
  idleTimeoutSeconds?: number;
  logFile?: string;
  httpLogFile?: string;
  promptLogFile?: string;
  echoLog?: (line: string) => void;
  /** Keep prompt-cache snapshots in this file across restarts. */
  snapshotFile?: string;
  /** Kill + restart the engine after this much silence during a request (ENGINE_WATCHDOG_S; 0 = off; default 120 s). */
  engineWatchdogMs?: number;
  /** Unload the engine after this long without a request (KEEP_ALIVE; 0 = never, the default). */
  keepAliveMs?: number;
  /** /health says "stalled" past this much silence (default: lib/server/engine-host.ts resolveStalledAfterMs). */
  engineStalledAfterMs?: number;
  /** Workers that render and tokenize prompts off the event loop (default 1; 0 = on the event loop). */
  promptWorkers?: number;
  /** Folder of the tokenizer cache (lib/server/tokenizer.ts); none: parse tokenizer.json on every start. */
  tokenizerCacheDir?: string;
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly host: EngineHost;
  readonly server: Server<undefined>;
  readonly logs: ServerLogs;
  /** Resolves once the engine's first start finished (ok or failed; see host.state). */
  readonly engineStarted: Promise<void>;
  /**
   * Graceful stop: refuse new requests, let streams finish (up to `graceMs`, cut short when the engine writes
   * nothing for 2 s), cancel the rest, stop the engine (SIGKILL if it has not exited 2 s after `shutdown`).
   */
  stop(graceMs?: number): Promise<void>;
}

export async function loadModelContext(dir: string, cacheDir?: string): Promise<ModelContext> {
  const started = elapsedMs();
  const tokenizer: ModelTokenizer = await loadTokenizer(dir, {
    cacheDir,
    onLoaded: (from, wrote) => logStep(`tokenizer: loaded from ${from === "cache" ? "its cache" : join(dir, "tokenizer.json")}${wrote ? " (cache written)" : ""}`, started),
  });
  const template: ChatTemplate = loadChatTemplate(dir);
  let structured: Promise<StructuredOutput> | undefined;
  // the grammar compiler reads the whole vocabulary: only when a request first asks for structured output
  const structuredOutput = (modelVocabSize: number) =>
    (structured ??= Bun.file(join(dir, "tokenizer.json"))
      .json()
      .then((json) => createStructuredOutput(readVocab(json), modelVocabSize, tokenizer)));
  return { tokenizer, template, structuredOutput };
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const logs = createServerLogs({ logFile: opts.logFile, httpLogFile: opts.httpLogFile, promptLogFile: opts.promptLogFile, echo: opts.echoLog });
  // the engine starts loading (its own process) before the tokenizer loads here, so the two overlap
  const host = createEngineHost({
    startEngine: opts.startEngine ?? startEngine,
    engine: { ...opts.engine, onLog: (line) => logs.info(`engine: ${line}`) },
    log: (line) => logs.info(line),
    watchdogMs: opts.engineWatchdogMs,
    keepAliveMs: opts.keepAliveMs,
    stalledAfterMs: opts.engineStalledAfterMs,
    onReady: async (engine) => {
      if (opts.snapshotFile && existsSync(opts.snapshotFile)) {
        await engine.loadSnapshots(opts.snapshotFile);
        logs.info(`prompt cache loaded from ${opts.snapshotFile}`);
      }
    },
  });
  // and so do the prompt workers, each loading its own tokenizer
  const promptPool =
    (opts.promptWorkers ?? 1) > 0 ? createPromptPool({ tokenizerDir: opts.tokenizerDir, size: opts.promptWorkers, cacheDir: opts.tokenizerCacheDir }) : undefined;
  let model: ModelContext;
  try {
    model = await loadModelContext(opts.tokenizerDir, opts.tokenizerCacheDir);
  } catch (e) {
    promptPool?.close();
    await host.close(2000);
    throw e;
  }
  void model.tokenizer.maxTokenBytes; // computed once now, not on the first request
  const defaults: GenerationDefaults = {
    ...opts.defaults,
    reasoningFormat: opts.defaults.reasoningFormat ?? "separate",
    allowForceTokens: opts.defaults.allowForceTokens ?? false,
  };
  const maxBodyBytes = opts.maxBodyBytes ?? 16 * 1024 * 1024;
  const idleTimeoutSeconds = opts.idleTimeoutSeconds ?? 30;
  const modelNames = new Set([opts.modelId, ...(opts.modelAliases ?? [])]);
  const queue: RequestQueue = createRequestQueue({ maxWaiting: opts.maxQueue ?? 16, retryAfterSeconds: () => ((queue.nWaiting + 1) * ctx.avgRequestMs) / 1000 });

  const ctx: ServerContext = {
    modelId: opts.modelId,
    modelNames,
    artifactsDir: opts.engine.artifactsDir,
    startedAt: Date.now(),
    apiKey: opts.apiKey,
    boundHost: opts.host,
    maxQueue: opts.maxQueue ?? 16,
    maxBodyBytes,
    host,
    queue,
    logs,
    model,
    defaults,
    promptPool,
    inFlight: new Set<AbortController>(),
    stopping: false,
    avgRequestMs: 5000,
    setIdleTimeout: (req, on) => server.timeout(req, on ? idleTimeoutSeconds : 0),
  };
  const { inFlight } = ctx;
  let nextId = 1;

  // the prompt workers load the tokenizer while the engine loads; listen once they can serve
  try {
    await promptPool?.ready;
  } catch (e) {
    await host.close(2000);
    throw e;
  }
  const server = Bun.serve({
    hostname: opts.host,
    port: opts.port,
    maxRequestBodySize: Number.MAX_SAFE_INTEGER, // readBodyText enforces maxBodyBytes, with an OpenAI-shaped 413
    idleTimeout: idleTimeoutSeconds, // generations lift it for their request (ctx.setIdleTimeout)
    async fetch(req) {
      const t0 = performance.now();
      const id = `req_${nextId++}`;
      const url = resolveRequestUrl(req.url);
      try {
        if (!url) throw badRequest(`cannot serve the request target ${JSON.stringify(req.url)}; send a path such as /v1/models`, null, "invalid_path");
        return await route(ctx, req, url, id, t0);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        if (url?.pathname !== "/health")
          logs.request({ method: req.method, route: url?.pathname ?? req.url, status: e.status, totalMs: performance.now() - t0, note: e.message });
        if (logs.httpEnabled) logs.http("response", id, `${e.status} ${JSON.stringify(renderErrorBody(e))}`);
        return errorResponse(e);
      }
    },
    error(e) {
      logs.info(`bug: ${e.stack ?? e.message}`);
      return errorResponse(new ApiError(500, `internal error: ${e.message}`, "server_error"));
    },
  });

  host.onCrash((reason) => {
    // in-flight generations fail on their own (the engine client raises EngineError); waiters keep their place
    logs.info(`${reason}; restarting it (${inFlight.size} request(s) in flight failed)`);
  });

  const url = `http://${opts.host.includes(":") ? `[${opts.host}]` : opts.host}:${server.port}`;
  logs.info(`listening on ${url} (model ${opts.modelId})`);

  return {
    url,
    port: server.port!,
    host,
    server,
    logs,
    engineStarted: host.firstStart,
    async stop(graceMs = 10_000) {
      if (ctx.stopping) return;
      ctx.stopping = true;
      queue.rejectAll(new ApiError(503, "the server is shutting down", "service_unavailable", null, "shutting_down"));
      // streams may finish while the engine keeps writing; a silent (stopped, spinning) engine gets no grace
      const deadline = Date.now() + graceMs;
      while (inFlight.size > 0 && Date.now() < deadline && host.silentMs < 2000) await Bun.sleep(20);
      for (const a of inFlight) a.abort(new Error("server shutting down"));
      const cancelDeadline = Date.now() + 1000; // cancel takes effect within one token
      while (inFlight.size > 0 && Date.now() < cancelDeadline) await Bun.sleep(20);
      await server.stop(true);
      if (opts.snapshotFile && host.engine && host.state === "ok" && inFlight.size === 0) {
        // the cache's folder (SERVER_CACHE_PERSIST: under the data dir) may not exist yet: the engine writes only the file
        mkdirSync(dirname(opts.snapshotFile), { recursive: true });
        const saved = host.engine.saveSnapshots(opts.snapshotFile).then(
          () => true,
          (e) => logs.info(`could not save the prompt cache: ${(e as Error).message}`),
        );
        if ((await Promise.race([saved, Bun.sleep(10_000).then(() => "late")])) === "late") logs.info("saving the prompt cache took over 10 s: not saved");
      }
      promptPool?.close();
      await host.close(2000);
      const drainDeadline = Date.now() + 1000; // requests still waiting on the killed engine fail now
      while (inFlight.size > 0 && Date.now() < drainDeadline) await Bun.sleep(10);
      logs.info("stopped");
    },
  };
}
