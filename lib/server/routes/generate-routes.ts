// POST /v1/chat/completions, POST /v1/responses and POST /v1/completions: parse, validate, generate.
import { createCompletionId } from "../chat-completions.ts";
import { createTextCompletionId, validateCompletionRequest } from "../completions.ts";
import { validateChatRequest, validateResponsesRequest } from "../validate.ts";
import { readJson, type RouteRequest, type ServerContext } from "./context.ts";
import { generate } from "./generation.ts";

async function readLoggedJson(ctx: ServerContext, { req, url, id }: RouteRequest): Promise<unknown> {
  const body = await readJson(ctx, req);
  if (ctx.logs.httpEnabled) ctx.logs.http("request", id, `${req.method} ${url.pathname}\n${JSON.stringify(body)}`);
  return body;
}

async function chatOrResponses(ctx: ServerContext, r: RouteRequest, kind: "chat" | "responses"): Promise<Response> {
  const body = await readLoggedJson(ctx, r);
  const gen = kind === "chat" ? validateChatRequest(body) : validateResponsesRequest(body);
  ctx.setIdleTimeout(r.req, false);
  try {
    return await generate(ctx, r.req, gen, kind, kind === "chat" ? createCompletionId() : r.id, r.t0, r.path);
  } catch (e) {
    ctx.setIdleTimeout(r.req, true);
    throw e;
  }
}

export function chatCompletions(ctx: ServerContext, r: RouteRequest): Promise<Response> {
  return chatOrResponses(ctx, r, "chat");
}

export function responses(ctx: ServerContext, r: RouteRequest): Promise<Response> {
  return chatOrResponses(ctx, r, "responses");
}

export async function completions(ctx: ServerContext, r: RouteRequest): Promise<Response> {
  const body = await readLoggedJson(ctx, r);
  const text = validateCompletionRequest(body);
  return generate(ctx, r.req, text.gen, "completions", createTextCompletionId(), r.t0, r.path, text);
}
