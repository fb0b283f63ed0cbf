// Which handler serves a request: the origin check, /health, the API key, then the route table; 404 otherwise.
import { ApiError } from "../errors.ts";
import { checkRequestSource } from "../origin.ts";
import type { RouteRequest, ServerContext } from "./context.ts";
import { chatCompletions, completions, responses } from "./generate-routes.ts";
import { health } from "./health.ts";
import { getModel, index, listModels } from "./models.ts";

type Handler = (ctx: ServerContext, r: RouteRequest) => Response | Promise<Response>;

/** "METHOD path" (trailing slashes removed) -> handler; GET /v1/models/{id} is matched by prefix. */
const ROUTES = new Map<string, Handler>([
  ["GET /", index],
  ["GET /v1", index],
  ["GET /v1/models", listModels],
  ["POST /v1/chat/completions", chatCompletions],
  ["POST /v1/responses", responses],
  ["POST /v1/completions", completions],
]);

function timingSafeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

function checkApiKey(ctx: ServerContext, req: Request) {
  if (!ctx.apiKey) return;
  const auth = req.headers.get("authorization") ?? "";
  const m = /^Bearer\s+(.+)$/i.exec(auth);
  if (!m || !timingSafeEqual(m[1]!.trim(), ctx.apiKey))
    throw new ApiError(401, "missing or wrong API key: send `Authorization: Bearer <FLASHCHAT_API_KEY>`", "authentication_error", null, "invalid_api_key");
}

export async function route(ctx: ServerContext, req: Request, url: URL, id: string, t0: number): Promise<Response> {
  const path = url.pathname.replace(/\/+$/, "") || "/";
  checkRequestSource(req.headers, { apiKey: ctx.apiKey, boundHost: ctx.boundHost });
  if (path === "/health") {
    if (req.method !== "GET" && req.method !== "HEAD") throw new ApiError(405, "use GET /health", "invalid_request_error");
    return await health(ctx, url);
  }
  checkApiKey(ctx, req);
  const r: RouteRequest = { req, url, path, id, t0 };
  const handler = ROUTES.get(`${req.method} ${path}`) ?? (req.method === "GET" && path.startsWith("/v1/models/") ? getModel : undefined);
  if (handler) return await handler(ctx, r);
  throw new ApiError(404, `no route ${req.method} ${url.pathname}`, "not_found_error", null, "not_found");
}
