// One engine, many clients: a FIFO of requests waiting for their turn, bounded (full -> HTTP 429).
import { ApiError } from "./errors.ts";

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (e: unknown) => void;
}

export interface RequestQueue {
  /** Wait for the engine. Resolves with `release` (call it exactly once); rejects with 429 when full, or when `signal` aborts. */
  acquire(signal?: AbortSignal): Promise<() => void>;
  readonly nWaiting: number;
  readonly busy: boolean;
  /** Fail every waiter (shutdown). */
  rejectAll(e: unknown): void;
}

export interface QueueOptions {
  /** Requests allowed to wait while one runs; one more gets 429. */
  maxWaiting: number;
  /** Seconds a client is told to wait (Retry-After) per request ahead of it. */
  retryAfterSeconds?: () => number;
}

export function createRequestQueue(opts: QueueOptions): RequestQueue {
  const waiters: Waiter[] = [];
  let busy = false;

  const makeRelease = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = waiters.shift();
      if (next) next.resolve(makeRelease());
      else busy = false;
    };
  };

  return {
    acquire(signal) {
      if (signal?.aborted) return Promise.reject(signal.reason ?? new Error("aborted"));
      if (!busy) {
        busy = true;
        return Promise.resolve(makeRelease());
      }
      if (waiters.length >= opts.maxWaiting) {
        const seconds = Math.max(1, Math.ceil(opts.retryAfterSeconds?.() ?? 5));
        return Promise.reject(
          new ApiError(
            429,
            `the server is busy (${waiters.length} requests waiting); retry after ${seconds}s`,
            "rate_limit_error",
            null,
            "queue_full",
            { "retry-after": String(seconds) },
          ),
        );
      }
      return new Promise((resolve, reject) => {
        const waiter: Waiter = { resolve, reject };
        waiters.push(waiter);
        signal?.addEventListener(
          "abort",
          () => {
            const i = waiters.indexOf(waiter);
            if (i >= 0) {
              waiters.splice(i, 1);
              reject(signal.reason ?? new Error("aborted"));
            }
          },
          { once: true },
        );
      });
    },
    get nWaiting() {
      return waiters.length;
    },
    get busy() {
      return busy;
    },
    rejectAll(e) {
      for (const w of waiters.splice(0)) w.reject(e);
    },
  };
}
