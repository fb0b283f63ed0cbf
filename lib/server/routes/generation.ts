// The shared path of /v1/chat/completions, /v1/responses and /v1/completions: queue, prompt, engine, reply.
import type { Engine } from "../../engine/types.ts";
import { collectChatCompletion, createChatChunker } from "../chat-completions.ts";
import { type CompletionRequest, collectTextCompletion, createTextCompletionChunker, prepareCompletionPrompt } from "../completions.ts";
import { ApiError, badRequest, renderErrorBody } from "../errors.ts";
import { checkPromptBytes, type GenerationEvent, preparePrompt, runGeneration } from "../generate.ts";
import { createResponseBuilder } from "../responses.ts";
import { createSseStream, renderSseData, SSE_HEADERS } from "../sse.ts";
import type { GenerationRequest } from "../validate.ts";
import { checkModel, type ServerContext } from "./context.ts";

/** Runs one generation and returns its reply, JSON or an SSE stream (`text`: a completion's prompt and echo). */
export async function generate(
  ctx: ServerContext,
  req: Request,
  gen: GenerationRequest,
  kind: "chat" | "responses" | "completions",
  id: string,
  t0: number,
  route: string,
  text?: CompletionRequest,
): Promise<Response> {
  const { host, queue, logs, model, defaults, promptPool, inFlight } = ctx;
  checkModel(ctx, gen.model);
  if (ctx.stopping) throw new ApiError(503, "the server is shutting down", "service_unavailable", null, "shutting_down");
  await host.ensureLoaded(); // KEEP_ALIVE may have unloaded it
  const engine0 = host.current();
  const contextTokens = engine0.ready.context;
  // cheap byte check first; then the template and tokenizer run in a worker, never on the event loop
  if (!text) checkPromptBytes(gen, contextTokens, model.tokenizer.maxTokenBytes);
  // prompts being prepared count as waiting: maxQueue may wait while one runs (or is prepared to run)
  const nAhead = (promptPool?.nPending ?? 0) + queue.nWaiting;
  if (nAhead >= ctx.maxQueue + (queue.busy ? 0 : 1))
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
  let release: () => void;
  try {
    release = await queue.acquire(abort.signal);
  } catch (e) {
    prompt.grammar?.dispose();
    req.signal.removeEventListener("abort", onClientGone);
    throw e;
  }
  if (req.signal.aborted) onClientGone(); // gone before we listened (Bun dropped the connection): cancelled at once
  inFlight.add(abort);
  const stats: { promptTokens?: number; cachedTokens?: number; completionTokens?: number; ttftMs?: number; tokPerSec?: number; note?: string } = {};
  let status = 200;
  const finish = () => {
    ctx.setIdleTimeout(req, true);
    release();
    // the engine client frees it when the generate ends; here too when the generate never started
    prompt.grammar?.dispose();
    inFlight.delete(abort);
    req.signal.removeEventListener("abort", onClientGone);
    const totalMs = performance.now() - t0;
    ctx.avgRequestMs = 0.8 * ctx.avgRequestMs + 0.2 * totalMs;
    logs.request({ method: "POST", route, status, totalMs, ...stats });
  };
  let engine: Engine;
  try {
    await host.ensureLoaded(); // unloaded while this request waited its turn
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
        const { body } = await collectChatCompletion(events, id, ctx.modelId, gen.logprobs !== undefined);
        return Response.json(body);
      }
      if (kind === "completions") return Response.json(await collectTextCompletion(events, id, ctx.modelId, echoText));
      const builder = createResponseBuilder(ctx.modelId);
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
        const chunker = createChatChunker(id, ctx.modelId, gen.includeUsage);
        write(chunker.start());
        for await (const e of events) if (!writer.closed) write(chunker.event(e));
      } else if (kind === "completions") {
        const chunker = createTextCompletionChunker(id, ctx.modelId, gen.includeUsage, echoText);
        write(chunker.start());
        for await (const e of events) if (!writer.closed) write(chunker.event(e));
      } else {
        const builder = createResponseBuilder(ctx.modelId, write);
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
