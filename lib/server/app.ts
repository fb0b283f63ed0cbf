// The HTTP server (Bun.serve): routes, API key, body limit, queue, logs, and the engine behind them.
import { existsSync } from "node:fs";
import type { Server } from "bun";
import { join } from "pathe";
import pkg from "../../package.json" with { type: "json" };
import { startEngine } from "../engine/client.ts";
import type { Engine, EngineStartOptions } from "../engine/types.ts";
import { type ChatTemplate, loadChatTemplate } from "./chat-template.ts";
import { collectChatCompletion, createChatChunker, createCompletionId } from "./chat-completions.ts";
import {
  type CompletionRequest,
  collectTextCompletion,
  createTextCompletionChunker,
  createTextCompletionId,
  prepareCompletionPrompt,
  validateCompletionRequest,
} from "./completions.ts";
import { createEngineHost, type EngineHost, type StartEngineFn } from "./engine-host.ts";
import { ApiError, badRequest, errorResponse, renderErrorBody } from "./errors.ts";
import { checkPromptBytes, type GenerationDefaults, type GenerationEvent, type ModelContext, preparePrompt, runGeneration } from "./generate.ts";
import { decodePathPart, readBodyText, resolveRequestUrl } from "./http-guard.ts";
import { createServerLogs, type ServerLogs } from "./logs.ts";
import { checkRequestSource } from "./origin.ts";
import { createPromptPool } from "./prompt-pool.ts";
import { createRequestQueue, type RequestQueue } from "./queue.ts";
import { createResponseBuilder } from "./responses.ts";
import { createSseStream, renderSseData, SSE_HEADERS } from "./sse.ts";
import { createStructuredOutput, readVocab, type StructuredOutput } from "./structured-output.ts";
import { loadTokenizer, type ModelTokenizer } from "./tokenizer.ts";
import { type GenerationRequest, type ReasoningFormat, validateChatRequest, validateResponsesRequest } from "./validate.ts";

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
  /** /health says "stalled" past this much silence (default: lib/server/engine-host.ts resolveStalledAfterMs). */
  engineStalledAfterMs?: number;
  /** Workers that render and tokenize prompts off the event loop (default 1; 0 = on the event loop). */
  promptWorkers?: number;
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

function timingSafeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

export async function loadModelContext(dir: string): Promise<ModelContext> {
  const tokenizer: ModelTokenizer = await loadTokenizer(dir);
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
  const model = await loadModelContext(opts.tokenizerDir);
  void model.tokenizer.maxTokenBytes; // computed once now, not on the first request
  const promptPool = (opts.promptWorkers ?? 1) > 0 ? createPromptPool({ tokenizerDir: opts.tokenizerDir, size: opts.promptWorkers }) : undefined;
  const defaults: GenerationDefaults = {
    ...opts.defaults,
    reasoningFormat: opts.defaults.reasoningFormat ?? "separate",
    allowForceTokens: opts.defaults.allowForceTokens ?? false,
  };
  const maxBodyBytes = opts.maxBodyBytes ?? 16 * 1024 * 1024;
  const idleTimeoutSeconds = opts.idleTimeoutSeconds ?? 30;
  /** A generation may wait minutes (queue, prefill, a slow token) with no byte moving: no idle timeout while it runs. */
  const setIdleTimeout = (req: Request, on: boolean) => server.timeout(req, on ? idleTimeoutSeconds : 0);
  const modelNames = new Set([opts.modelId, ...(opts.modelAliases ?? [])]);
  let avgRequestMs = 5000;
  const queue: RequestQueue = createRequestQueue({ maxWaiting: opts.maxQueue ?? 16, retryAfterSeconds: () => ((queue.nWaiting + 1) * avgRequestMs) / 1000 });
  const inFlight = new Set<AbortController>();
  let stopping = false;

  const host = createEngineHost({
    startEngine: opts.startEngine ?? startEngine,
    engine: { ...opts.engine, onLog: (line) => logs.info(`engine: ${line}`) },
    log: (line) => logs.info(line),
    watchdogMs: opts.engineWatchdogMs,
    stalledAfterMs: opts.engineStalledAfterMs,
    onReady: async (engine) => {
      if (opts.snapshotFile && existsSync(opts.snapshotFile)) {
        await engine.loadSnapshots(opts.snapshotFile);
        logs.info(`prompt cache loaded from ${opts.snapshotFile}`);
      }
    },
  });

  let nextId = 1;

  async function readJson(req: Request): Promise<unknown> {
    const text = await readBodyText(req, maxBodyBytes);
    try {
      return JSON.parse(text);
    } catch (e) {
      throw badRequest(`could not parse the JSON body: ${(e as Error).message}`, null, "invalid_json");
    }
  }

  function checkModel(name: string | undefined) {
    if (name === undefined || modelNames.has(name)) return;
    throw new ApiError(400, `the model ${JSON.stringify(name)} does not exist; this server runs ${JSON.stringify(opts.modelId)}`, "invalid_request_error", "model", "model_not_found");
  }

  /** Shared path of /v1/chat/completions, /v1/responses and /v1/completions (`text`: its prompt and echo). */
  async function generate(
    req: Request,
    gen: GenerationRequest,
    kind: "chat" | "responses" | "completions",
    id: string,
    t0: number,
    route: string,
    text?: CompletionRequest,
  ): Promise<Response> {
    checkModel(gen.model);
    if (stopping) throw new ApiError(503, "the server is shutting down", "service_unavailable", null, "shutting_down");
    const engine0 = host.current();
    const contextTokens = engine0.ready.context;
    // cheap byte check first; then the template and tokenizer run in a worker, never on the event loop
    if (!text) checkPromptBytes(gen, contextTokens, model.tokenizer.maxTokenBytes);
    // prompts being prepared count as waiting: maxQueue may wait while one runs (or is prepared to run)
    const nAhead = (promptPool?.nPending ?? 0) + queue.nWaiting;
    if (nAhead >= (opts.maxQueue ?? 16) + (queue.busy ? 0 : 1))
      throw new ApiError(429, `the server is busy (${nAhead} requests ahead); retry after 5s`, "rate_limit_error", null, "queue_full", { "retry-after": "5" });
    let prompt;
    try {
      if (text) prompt = prepareCompletionPrompt(model, text, contextTokens, defaults);
      else prompt = promptPool ? await promptPool.prepare(gen, contextTokens, defaults, req.signal) : preparePrompt(model, gen, contextTokens, defaults);
    } catch (e) {
      if (req.signal.aborted && !(e instanceof ApiError)) throw new ApiError(499, "the client closed the request", "invalid_request_error", null, "client_closed_request");
      throw e;
    }
    if (prompt.constraint) {
      // compiled before queueing: a schema the grammar engine cannot take is a 400 at once
      const where = prompt.constraint.kind === "tool_call" ? "tool_choice" : kind === "responses" ? "text.format" : "response_format";
      if (!model.structuredOutput) throw badRequest("structured output is not available on this server", where);
      const so = await model.structuredOutput(engine0.ready.model.vocab_size);
      prompt.grammar = await so.grammarFor(prompt.constraint, where);
    }
    const echoText = text?.echo ? prompt.text : undefined;
    logs.prompt(id, prompt.text);
    const abort = new AbortController();
    const onClientGone = () => abort.abort(new Error("client disconnected"));
    req.signal.addEventListener("abort", onClientGone, { once: true });
    const release = await queue.acquire(abort.signal);
    if (req.signal.aborted) onClientGone(); // gone before we listened (Bun dropped the connection): cancelled at once
    inFlight.add(abort);
    const stats: { promptTokens?: number; cachedTokens?: number; completionTokens?: number; ttftMs?: number; tokPerSec?: number; note?: string } = {};
    let status = 200;
    const finish = () => {
      setIdleTimeout(req, true);
      release();
      inFlight.delete(abort);
      req.signal.removeEventListener("abort", onClientGone);
      const totalMs = performance.now() - t0;
      avgRequestMs = 0.8 * avgRequestMs + 0.2 * totalMs;
      logs.request({ method: "POST", route, status, totalMs, ...stats });
    };
    let engine: Engine;
    try {
      engine = host.current();
    } catch (e) {
      finish();
      throw e;
    }
    const events = (async function* (): AsyncGenerator<GenerationEvent> {
      for await (const e of runGeneration(engine, model, gen, prompt, defaults, abort.signal)) {
        if (e.type === "done") {
          stats.promptTokens = e.usage.promptTokens;
          stats.cachedTokens = e.usage.cachedTokens;
          stats.completionTokens = e.usage.completionTokens;
          stats.ttftMs = e.timings.ttftMs;
          if (e.timings.decodeMs > 0) stats.tokPerSec = (e.usage.completionTokens * 1000) / e.timings.decodeMs;
          if (e.finishReason === "cancelled") stats.note = "cancelled by the client";
        }
        yield e;
      }
    })();

    if (!gen.stream) {
      try {
        if (kind === "chat") {
          const { body } = await collectChatCompletion(events, id, opts.modelId, gen.logprobs !== undefined);
          return Response.json(body);
        }
        if (kind === "completions") return Response.json(await collectTextCompletion(events, id, opts.modelId, echoText));
        const builder = createResponseBuilder(opts.modelId);
        let final: unknown;
        for await (const e of events) final = builder.event(e) ?? final;
        return Response.json(final);
      } catch (e) {
        if (e instanceof ApiError) status = e.status;
        else status = 500;
        throw e;
      } finally {
        finish();
      }
    }

    const { stream, writer } = createSseStream(() => abort.abort(new Error("client disconnected")));
    const write = (frame: string) => {
      writer.write(frame);
      if (logs.httpEnabled && frame) logs.http("response", id, frame);
    };
    void (async () => {
      try {
        if (kind === "chat") {
          const chunker = createChatChunker(id, opts.modelId, gen.includeUsage);
          write(chunker.start());
          for await (const e of events) if (!writer.closed) write(chunker.event(e));
        } else if (kind === "completions") {
          const chunker = createTextCompletionChunker(id, opts.modelId, gen.includeUsage, echoText);
          write(chunker.start());
          for await (const e of events) if (!writer.closed) write(chunker.event(e));
        } else {
          const builder = createResponseBuilder(opts.modelId, write);
          builder.start();
          for await (const e of events) builder.event(e);
        }
      } catch (e) {
        const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${(e as Error).message}`, "server_error");
        status = err.status;
        stats.note = err.message;
        if (!(e instanceof ApiError)) logs.info(`bug: ${(e as Error).stack}`);
        if (kind !== "responses") write(renderSseData(renderErrorBody(err)));
        else write(`event: error\ndata: ${JSON.stringify({ type: "error", code: err.code, message: err.message, param: err.param, sequence_number: 0 })}\n\n`);
      } finally {
        writer.close();
        finish();
      }
    })();
    return new Response(stream, { headers: SSE_HEADERS });
  }

  function health(): Response {
    const status = host.state;
    const body: Record<string, unknown> = { status, model: opts.modelId, pid: process.pid };
    const engine = host.engine;
    if ((status === "ok" || status === "stalled") && engine) {
      const ready = engine.ready;
      body.engine = { pid: engine.pid, backend: ready.backend, context: ready.context, kv_type: ready.kv_type, kv_bytes_per_token: ready.kv_bytes_per_token, silent_ms: Math.round(host.silentMs) };
      body.context_length = ready.context;
      body.queue = { busy: queue.busy, waiting: queue.nWaiting, preparing: promptPool?.nPending ?? 0 };
    }
    if (host.lastRecovery) body.last_restart = { reason: host.lastRecovery.reason, recovery_ms: host.lastRecovery.recoveryMs, restarts: host.nRestarts };
    if (host.error) body.error = host.error;
    return Response.json(body, { status: status === "ok" ? 200 : 503 });
  }

  async function route(req: Request, url: URL, id: string, t0: number): Promise<Response> {
    const path = url.pathname.replace(/\/+$/, "") || "/";
    checkRequestSource(req.headers, { apiKey: opts.apiKey, boundHost: opts.host });
    if (path === "/health") {
      if (req.method !== "GET" && req.method !== "HEAD") throw new ApiError(405, "use GET /health", "invalid_request_error");
      return health();
    }
    if (opts.apiKey) {
      const auth = req.headers.get("authorization") ?? "";
      const m = /^Bearer\s+(.+)$/i.exec(auth);
      if (!m || !timingSafeEqual(m[1]!.trim(), opts.apiKey))
        throw new ApiError(401, "missing or wrong API key: send `Authorization: Bearer <FLASHCHAT_API_KEY>`", "authentication_error", null, "invalid_api_key");
    }
    const created = Math.floor(Date.now() / 1000);
    const modelObject = {
      id: opts.modelId,
      object: "model",
      created,
      owned_by: "flashchat",
      // tokens of prompt + reply the engine holds (CONTEXT_SIZE, or the model's maximum as memory allows)
      ...(host.state === "ok" ? { context_length: host.engine!.ready.context } : {}),
    };
    if (req.method === "GET") {
      if (path === "/v1/models") return Response.json({ object: "list", data: [modelObject] });
      if (path.startsWith("/v1/models/")) {
        const name = decodePathPart(path.slice("/v1/models/".length));
        if (name === undefined) throw badRequest(`the path ${url.pathname} is not valid percent-encoding`, null, "invalid_path");
        checkModel(name);
        return Response.json(modelObject);
      }
      if (path === "/v1" || path === "/") {
        return Response.json({
          name: "flashchat",
          version: pkg.version,
          model: opts.modelId,
          status: host.state,
          endpoints: ["POST /v1/chat/completions", "POST /v1/responses", "POST /v1/completions", "GET /v1/models", "GET /health"],
        });
      }
    }
    if (req.method === "POST" && (path === "/v1/chat/completions" || path === "/v1/responses")) {
      const body = await readJson(req);
      if (logs.httpEnabled) logs.http("request", id, `${req.method} ${url.pathname}\n${JSON.stringify(body)}`);
      const kind = path === "/v1/chat/completions" ? "chat" : "responses";
      const gen = kind === "chat" ? validateChatRequest(body) : validateResponsesRequest(body);
      setIdleTimeout(req, false);
      try {
        return await generate(req, gen, kind, kind === "chat" ? createCompletionId() : id, t0, path);
      } catch (e) {
        setIdleTimeout(req, true);
        throw e;
      }
    }
    if (req.method === "POST" && path === "/v1/completions") {
      const body = await readJson(req);
      if (logs.httpEnabled) logs.http("request", id, `${req.method} ${url.pathname}\n${JSON.stringify(body)}`);
      const text = validateCompletionRequest(body);
      return generate(req, text.gen, "completions", createTextCompletionId(), t0, path, text);
    }
    throw new ApiError(404, `no route ${req.method} ${url.pathname}`, "not_found_error", null, "not_found");
  }

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
    idleTimeout: idleTimeoutSeconds, // generations lift it for their request (setIdleTimeout)
    async fetch(req) {
      const t0 = performance.now();
      const id = `req_${nextId++}`;
      const url = resolveRequestUrl(req.url);
      try {
        if (!url) throw badRequest(`cannot serve the request target ${JSON.stringify(req.url)}; send a path such as /v1/models`, null, "invalid_path");
        return await route(req, url, id, t0);
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
      if (stopping) return;
      stopping = true;
      queue.rejectAll(new ApiError(503, "the server is shutting down", "service_unavailable", null, "shutting_down"));
      // streams may finish while the engine keeps writing; a silent (stopped, spinning) engine gets no grace
      const deadline = Date.now() + graceMs;
      while (inFlight.size > 0 && Date.now() < deadline && host.silentMs < 2000) await Bun.sleep(20);
      for (const a of inFlight) a.abort(new Error("server shutting down"));
      const cancelDeadline = Date.now() + 1000; // cancel takes effect within one token
      while (inFlight.size > 0 && Date.now() < cancelDeadline) await Bun.sleep(20);
      await server.stop(true);
      if (opts.snapshotFile && host.engine && host.state === "ok" && inFlight.size === 0) {
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
