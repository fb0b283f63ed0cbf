// Keeps one engine child alive for the server: start it, report its real state (loading / ok / stalled /
// restarting / error), restart it when it dies, kill it (watchdog) when it stops writing while a request runs, and
// unload it after KEEP_ALIVE idle seconds (loaded again by the next request).
import type { Engine, EngineStartOptions } from "../engine/types.ts";
import { ApiError } from "./errors.ts";

export type EngineState = "loading" | "ok" | "stalled" | "restarting" | "error" | "stopped" | "unloaded";
export type StartEngineFn = (opts: EngineStartOptions) => Promise<Engine>;

export interface EngineRecovery {
  reason: string;
  /** From the moment the engine was found dead or stalled to the new engine's `ready`. */
  recoveryMs: number;
}

export interface EngineHost {
  readonly state: EngineState;
  readonly engine: Engine | undefined;
  /** Why the last start failed (state "error"). */
  readonly error: string | undefined;
  readonly nRestarts: number;
  /** The last restart after a crash or a watchdog kill, once the new engine is ready. */
  readonly lastRecovery: EngineRecovery | undefined;
  /** Milliseconds the running request has had no engine output (0 when idle). */
  readonly silentMs: number;
  /** Resolves when the first start finished (either way). */
  readonly firstStart: Promise<void>;
  /** The running engine, or a 503 saying it is loading / restarting / failed. */
  current(): Engine;
  /** Load the engine again if KEEP_ALIVE unloaded it (waits for it); call before current(). */
  ensureLoaded(): Promise<void>;
  /** Fired when a running engine died (after in-flight generations have failed). */
  onCrash(fn: (reason: string) => void): void;
  /** Stop the engine: shutdown op, SIGKILL after `deadlineMs`. */
  close(deadlineMs?: number): Promise<void>;
}

export interface EngineHostOptions {
  startEngine: StartEngineFn;
  engine: EngineStartOptions;
  log: (line: string) => void;
  /** Restarts tried in a row before staying in "error". */
  maxRestarts?: number;
  /** Called with each new engine once ready (e.g. to load persisted snapshots). */
  onReady?: (engine: Engine) => Promise<void>;
  /** Kill and restart the engine when a request has had no engine output for this long (0 = never). */
  watchdogMs?: number;
  /** /health says "stalled" past this much silence (default: half the watchdog, at most 30 s; 30 s without one). */
  stalledAfterMs?: number;
  /** Unload the engine after this long without a request (KEEP_ALIVE; 0 = never, the default). */
  keepAliveMs?: number;
}

export const DEFAULT_WATCHDOG_MS = 120_000;

/** The silence after which /health reports "stalled". */
export const resolveStalledAfterMs = (watchdogMs: number) => (watchdogMs > 0 ? Math.min(30_000, watchdogMs / 2) : 30_000);

export function createEngineHost(opts: EngineHostOptions): EngineHost {
  const watchdogMs = opts.watchdogMs ?? DEFAULT_WATCHDOG_MS;
  const stalledAfterMs = opts.stalledAfterMs ?? resolveStalledAfterMs(watchdogMs);
  let state: Exclude<EngineState, "stalled"> = "loading";
  let engine: Engine | undefined;
  let error: string | undefined;
  let nRestarts = 0;
  let failuresInRow = 0;
  let closing = false;
  let lastRecovery: EngineRecovery | undefined;
  let lastUsedMs = performance.now();
  let down: { reason: string; at: number } | undefined;
  const crashListeners: ((reason: string) => void)[] = [];

  const start = async (): Promise<void> => {
    state = down ? "restarting" : "loading";
    try {
      const e = await opts.startEngine(opts.engine);
      if (closing) {
        await e.close();
        return;
      }
      engine = e;
      if (opts.onReady) await opts.onReady(e).catch((err) => opts.log(`engine: after start: ${(err as Error).message}`));
      state = "ok";
      error = undefined;
      lastUsedMs = performance.now(); // KEEP_ALIVE counts from the moment it is ready
      opts.log(`engine ready: pid ${e.pid}, ${e.ready.backend}, ${e.ready.threads} threads, context ${e.ready.context}`);
      if (down) {
        lastRecovery = { reason: down.reason, recoveryMs: Math.round(performance.now() - down.at) };
        opts.log(`engine recovered ${lastRecovery.recoveryMs} ms after: ${down.reason}`);
        down = undefined;
      }
      void e.exited.then((code) => {
        if (engine !== e || closing) return;
        engine = undefined;
        const reason = down?.reason ?? `the engine exited unexpectedly (${code})`;
        down ??= { reason, at: performance.now() };
        opts.log(reason);
        for (const fn of crashListeners) fn(reason);
        nRestarts++;
        void restart();
      });
    } catch (e) {
      error = (e as Error).message;
      state = "error";
      opts.log(`engine failed to start: ${error}`);
      throw e;
    }
  };

  const restart = async () => {
    while (!closing) {
      try {
        await start();
        failuresInRow = 0;
        return;
      } catch {
        failuresInRow++;
        if (failuresInRow >= (opts.maxRestarts ?? 3)) return;
        await Bun.sleep(500 * failuresInRow);
      }
    }
  };

  // The watchdog: a running request with no engine line (token, progress, anything) for watchdogMs -> SIGKILL
  // by pid; the exit handler above fails the request (EngineError "stalled") and restarts the engine.
  const timer =
    watchdogMs > 0
      ? setInterval(() => {
          const e = engine;
          if (!e || state !== "ok" || closing || down) return;
          const { busy, silentMs } = e.activity();
          if (!busy || silentMs < watchdogMs) return;
          const reason = `engine watchdog: no output for ${Math.round(silentMs / 1000)} s while a request ran (ENGINE_WATCHDOG_S=${watchdogMs / 1000}); killed pid ${e.pid} and restarting it`;
          down = { reason, at: performance.now() };
          opts.log(reason);
          e.kill(`the engine produced no output for ${Math.round(silentMs / 1000)} s; it was killed and is restarting`, "stalled");
        }, Math.max(20, Math.min(1000, watchdogMs / 10)))
      : undefined;
  timer?.unref?.();

  // KEEP_ALIVE: an idle engine is shut down (its memory freed); the next request starts it again
  const keepAliveMs = opts.keepAliveMs ?? 0;
  let unloading: Promise<void> | undefined;
  let reloading: Promise<void> | undefined;
  const idleTimer =
    keepAliveMs > 0
      ? setInterval(() => {
          const e = engine;
          if (!e || state !== "ok" || closing || down || unloading) return;
          if (e.activity().busy) {
            lastUsedMs = performance.now();
            return;
          }
          if (performance.now() - lastUsedMs < keepAliveMs) return;
          opts.log(`engine idle for ${Math.round((performance.now() - lastUsedMs) / 1000)} s (KEEP_ALIVE=${keepAliveMs / 1000}): unloading it; the next request loads it again`);
          state = "unloaded";
          engine = undefined;
          unloading = e.close().then(() => {
            unloading = undefined;
          });
        }, Math.max(20, Math.min(1000, keepAliveMs / 4)))
      : undefined;
  idleTimer?.unref?.();

  const firstStart = start().catch(() => {});
  const silent = () => (state === "ok" && engine ? engine.activity().silentMs : 0);

  return {
    get state(): EngineState {
      return state === "ok" && silent() > stalledAfterMs ? "stalled" : state;
    },
    get engine() {
      return engine;
    },
    get error() {
      return error;
    },
    get nRestarts() {
      return nRestarts;
    },
    get lastRecovery() {
      return lastRecovery;
    },
    get silentMs() {
      return silent();
    },
    firstStart,
    current() {
      lastUsedMs = performance.now();
      if (state === "ok" && engine) return engine;
      if (state === "error") throw new ApiError(503, `the engine is not running: ${error}`, "service_unavailable", null, "engine_failed");
      if (state === "restarting")
        throw new ApiError(503, "the engine is restarting; retry shortly", "service_unavailable", null, "engine_restarting", { "retry-after": "2" });
      throw new ApiError(503, "the model is loading; retry shortly", "service_unavailable", null, "model_loading", { "retry-after": "2" });
    },
    async ensureLoaded() {
      lastUsedMs = performance.now();
      if (state !== "unloaded" || closing) return;
      reloading ??= (async () => {
        await unloading; // the old engine's memory is freed before the new one maps its weights
        opts.log("a request for the unloaded model: loading the engine again");
        await start().catch(() => {}); // a failed start leaves state "error": current() reports it
      })().finally(() => {
        reloading = undefined;
      });
      await reloading;
      lastUsedMs = performance.now();
    },
    onCrash(fn) {
      crashListeners.push(fn);
    },
    async close(deadlineMs = 3000) {
      closing = true;
      if (timer) clearInterval(timer);
      if (idleTimer) clearInterval(idleTimer);
      await unloading;
      state = "stopped";
      const e = engine;
      engine = undefined;
      if (e && (await e.close(deadlineMs)) === "killed") opts.log(`engine pid ${e.pid} did not exit within ${deadlineMs} ms of shutdown: killed (SIGKILL)`);
    },
  };
}
