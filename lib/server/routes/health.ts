// GET /health: the engine's state, the queue, the last restart; 200 only when ready. GET /health?stats=1 adds
// the engine's totals (its `stats` reply: tokens, expert reads, page-cache hits, memory) for the TUI's status view.
import type { ServerContext } from "./context.ts";

/** How long /health?stats=1 waits for the engine's totals (it answers between tokens) before leaving them out. */
const STATS_WAIT_MS = 1000;

export async function health(ctx: ServerContext, url?: URL): Promise<Response> {
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
    const info: Record<string, unknown> = {
      pid: engine.pid,
      backend: ready.backend,
      kernels: ready.kernels,
      threads: ready.threads,
      context: ready.context,
      kv_type: ready.kv_type,
      kv_bytes_per_token: ready.kv_bytes_per_token,
      dense_bytes: ready.dense_bytes,
      expert_bytes_per_token: ready.expert_bytes_per_token,
      expert_io: ready.expert_io,
      silent_ms: Math.round(host.silentMs),
    };
    if (url?.searchParams.has("stats")) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<undefined>((r) => (timer = setTimeout(r, STATS_WAIT_MS, undefined)));
      const stats = await Promise.race([engine.stats().catch(() => undefined), late]).finally(() => clearTimeout(timer));
      if (stats) info.stats = stats;
    }
    body.engine = info;
    body.context_length = ready.context;
    body.queue = { busy: queue.busy, waiting: queue.nWaiting, preparing: promptPool?.nPending ?? 0 };
  }
  if (host.lastRecovery) body.last_restart = { reason: host.lastRecovery.reason, recovery_ms: host.lastRecovery.recoveryMs, restarts: host.nRestarts };
  if (host.error) body.error = host.error;
  return Response.json(body, { status: status === "ok" ? 200 : 503 });
}
