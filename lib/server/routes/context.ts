// What every route handler of one server shares: its options, engine host, queue, logs, model, defaults, prompt pool.
import type { EngineHost } from "../engine-host.ts";
import { ApiError, badRequest } from "../errors.ts";
import type { GenerationDefaults, ModelContext } from "../generate.ts";
import { readBodyText } from "../http-guard.ts";
import type { ServerLogs } from "../logs.ts";
import type { PromptPool } from "../prompt-pool.ts";
import type { RequestQueue } from "../queue.ts";

export interface ServerContext {
  /** The id clients send as `model`. */
  readonly modelId: string;
  /** modelId and its aliases. */
  readonly modelNames: ReadonlySet<string>;
  /** The model's artifacts folder (clients compare it with the model they want: /health artifacts_dir). */
  readonly artifactsDir: string;
  /** Date.now() when the server started (/health started_at, uptime). */
  readonly startedAt: number;
  readonly apiKey?: string;
  /** The host the server is bound to (the origin checks compare against it). */
  readonly boundHost: string;
  readonly maxQueue: number;
  readonly maxBodyBytes: number;
  readonly host: EngineHost;
  readonly queue: RequestQueue;
  readonly logs: ServerLogs;
  readonly model: ModelContext;
  readonly defaults: GenerationDefaults;
  readonly promptPool?: PromptPool;
  /** Generations in flight, to cancel on stop. */
  readonly inFlight: Set<AbortController>;
  /** True once stop() began: new generations get 503. */
  stopping: boolean;
  /** Moving average of a request's total time (the queue's Retry-After estimate). */
  avgRequestMs: number;
  /** A generation may wait minutes (queue, prefill, a slow token) with no byte moving: no idle timeout while it runs. */
  setIdleTimeout(req: Request, on: boolean): void;
}

/** One request as the router hands it to a handler. */
export interface RouteRequest {
  req: Request;
  url: URL;
  /** The path without trailing slashes. */
  path: string;
  /** The request's log id (req_N). */
  id: string;
  /** performance.now() when it arrived. */
  t0: number;
}

export async function readJson(ctx: ServerContext, req: Request): Promise<unknown> {
  const text = await readBodyText(req, ctx.maxBodyBytes);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`could not parse the JSON body: ${(e as Error).message}`, null, "invalid_json");
  }
}

export function checkModel(ctx: ServerContext, name: string | undefined) {
  if (name === undefined || ctx.modelNames.has(name)) return;
  throw new ApiError(400, `the model ${JSON.stringify(name)} does not exist; this server runs ${JSON.stringify(ctx.modelId)}`, "invalid_request_error", "model", "model_not_found");
}
