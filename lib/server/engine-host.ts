// Keeps one engine child alive for the server: start it, report loading / ok / error, and restart it when it dies.
import type { Engine, EngineStartOptions } from "../engine/types.ts";
import { ApiError } from "./errors.ts";

export type EngineState = "loading" | "ok" | "error" | "stopped";
export type StartEngineFn = (opts: EngineStartOptions) => Promise<Engine>;

export interface EngineHost {
  readonly state: EngineState;
  readonly engine: Engine | undefined;
  /** Why the last start failed (state "error"). */
  readonly error: string | undefined;
  readonly nRestarts: number;
  /** Resolves when the first start finished (either way). */
  readonly firstStart: Promise<void>;
  /** The running engine, or a 503 saying it is loading / failed. */
  current(): Engine;
  /** Fired when a running engine died (after in-flight generations have failed). */
  onCrash(fn: (reason: string) => void): void;
  close(): Promise<void>;
}

export interface EngineHostOptions {
  startEngine: StartEngineFn;
  engine: EngineStartOptions;
  log: (line: string) => void;
  /** Restarts tried in a row before staying in "error". */
  maxRestarts?: number;
  /** Called with each new engine once ready (e.g. to load persisted snapshots). */
  onReady?: (engine: Engine) => Promise<void>;
}

export function createEngineHost(opts: EngineHostOptions): EngineHost {
  let state: EngineState = "loading";
  let engine: Engine | undefined;
  let error: string | undefined;
  let nRestarts = 0;
  let failuresInRow = 0;
  let closing = false;
  const crashListeners: ((reason: string) => void)[] = [];

  const start = async (): Promise<void> => {
    state = "loading";
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
      opts.log(`engine ready: pid ${e.pid}, ${e.ready.backend}, ${e.ready.threads} threads, context ${e.ready.context}`);
      void e.exited.then((code) => {
        if (engine !== e || closing) return;
        engine = undefined;
        const reason = `the engine exited unexpectedly (${code})`;
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

  const firstStart = start().catch(() => {});

  return {
    get state() {
      return state;
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
    firstStart,
    current() {
      if (state === "ok" && engine) return engine;
      if (state === "error") throw new ApiError(503, `the engine is not running: ${error}`, "service_unavailable", null, "engine_failed");
      throw new ApiError(503, "the model is loading; retry shortly", "service_unavailable", null, "model_loading", { "retry-after": "2" });
    },
    onCrash(fn) {
      crashListeners.push(fn);
    },
    async close() {
      closing = true;
      state = "stopped";
      const e = engine;
      engine = undefined;
      if (e) await e.close();
    },
  };
}
