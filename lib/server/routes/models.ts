// GET /v1/models, GET /v1/models/{id} and the index (GET / and GET /v1).
import pkg from "../../../package.json" with { type: "json" };
import { badRequest } from "../errors.ts";
import { decodePathPart } from "../http-guard.ts";
import { checkModel, type RouteRequest, type ServerContext } from "./context.ts";

function modelObject(ctx: ServerContext) {
  return {
    id: ctx.modelId,
    object: "model",
    created: Math.floor(Date.now() / 1000),
    owned_by: "flashchat",
    // tokens of prompt + reply the engine holds (CONTEXT_SIZE, or the model's maximum as memory allows)
    ...(ctx.host.state === "ok" ? { context_length: ctx.host.engine!.ready.context } : {}),
  };
}

export function listModels(ctx: ServerContext): Response {
  return Response.json({ object: "list", data: [modelObject(ctx)] });
}

/** `r.path` starts with /v1/models/. */
export function getModel(ctx: ServerContext, r: RouteRequest): Response {
  const name = decodePathPart(r.path.slice("/v1/models/".length));
  if (name === undefined) throw badRequest(`the path ${r.url.pathname} is not valid percent-encoding`, null, "invalid_path");
  checkModel(ctx, name);
  return Response.json(modelObject(ctx));
}

export function index(ctx: ServerContext): Response {
  return Response.json({
    name: "flashchat",
    version: pkg.version,
    model: ctx.modelId,
    status: ctx.host.state,
    endpoints: ["POST /v1/chat/completions", "POST /v1/responses", "POST /v1/completions", "GET /v1/models", "GET /health"],
  });
}
