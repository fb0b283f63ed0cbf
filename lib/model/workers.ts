// A small pool of model workers (lib/model/_model-worker.ts) for the CPU-bound quantization work: one request per
// worker at a time, a queue for the rest; user errors raised in a worker come back as UserError.
import { availableParallelism } from "node:os";
import { UserError } from "../errors.ts";
import type { WorkerRequest } from "./_model-worker.ts";

export interface ModelWorkerPool {
  size: number;
  run<T>(req: WorkerRequest, onProgress?: (bytes: number) => void): Promise<T>;
  close(): void;
}

/** Workers to use: every core, at most 8 (the work is memory-bound beyond that). */
export const defaultWorkerCount = () => Math.max(1, Math.min(8, availableParallelism()));

interface Job {
  req: WorkerRequest;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  onProgress?: (bytes: number) => void;
}

export function createModelWorkerPool(n = defaultWorkerCount()): ModelWorkerPool {
  const queue: Job[] = [];
  const idle: Worker[] = [];
  const busy = new Map<Worker, Job>();
  const workers: Worker[] = [];
  let nextId = 0;
  const pump = () => {
    while (idle.length && queue.length) {
      const w = idle.pop()!;
      const job = queue.shift()!;
      busy.set(w, job);
      w.postMessage({ id: nextId++, ...job.req });
    }
  };
  for (let i = 0; i < n; i++) {
    const w = new Worker(new URL("./_model-worker.ts", import.meta.url));
    w.onmessage = (e: MessageEvent<{ progress?: number; result?: unknown; error?: { message: string; hint?: string; user: boolean; stack?: string } }>) => {
      const job = busy.get(w);
      if (!job) return;
      if (e.data.progress !== undefined) {
        job.onProgress?.(e.data.progress);
        return;
      }
      busy.delete(w);
      idle.push(w);
      if (e.data.error) {
        const err = e.data.error.user ? new UserError(e.data.error.message, e.data.error.hint) : Object.assign(new Error(e.data.error.message), { stack: e.data.error.stack });
        job.reject(err);
      } else job.resolve(e.data.result);
      pump();
    };
    w.onerror = (e) => {
      const job = busy.get(w);
      busy.delete(w);
      job?.reject(new Error(`model worker crashed: ${e.message}`));
    };
    workers.push(w);
    idle.push(w);
  }
  return {
    size: n,
    run<T>(req: WorkerRequest, onProgress?: (bytes: number) => void): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ req, resolve: resolve as (v: unknown) => void, reject, onProgress });
        pump();
      });
    },
    close() {
      for (const w of workers) w.terminate();
    },
  };
}
