// GET /health: the engine's state, the queue, the last restart; 200 only when ready.
import type { ServerContext } from "./context.ts";

export function health(ctx: ServerContext): Response {
  const { host, queue, promptPool } = ctx;
  // unloaded by KEEP_ALIVE: ready all the same (the next request loads the engine again)
  const unloaded = host.state === "unloaded";
  const status = unloaded ? "ok" : host.state;
  const body: Record<string, unknown> = {
    status,
    ...(unloaded ? { unloaded: true } : {}),
    model: ctx.modelId,
    pid: process.pid,
    // what is loaded, for `flashchat status` and for clients asking for another model
    artifacts_dir: ctx.artifactsDir,
    started_at: new Date(ctx.startedAt).toISOString(),
    uptime_s: Math.round((Date.now() - ctx.startedAt) / 1000),
  };
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
