// Chat template rendering and tokenization off the event loop: a small pool of Bun Workers (lib/server/_prompt-worker.ts),
// each with its own tokenizer; jobs wait in one FIFO, a client that goes away frees its worker (terminated, respawned).
import { ApiError } from "./errors.ts";
import type { GenerationDefaults, PreparedPrompt } from "./generate.ts";
import type { PromptWorkerReply, PromptWorkerRequest } from "./_prompt-worker.ts";
import type { GenerationRequest } from "./validate.ts";

export interface PromptPool {
  /** Render + tokenize in a worker; rejects with the worker's ApiError (400 etc.), or the signal's reason. */
  prepare(req: GenerationRequest, contextTokens: number, defaults: GenerationDefaults, signal?: AbortSignal): Promise<PreparedPrompt>;
  /** Resolves once every worker has loaded the tokenizer (rejects if one could not). */
  readonly ready: Promise<void>;
  /** Jobs waiting for a worker and running. */
  readonly nPending: number;
  close(): void;
}

interface Job {
  id: number;
  message: PromptWorkerRequest;
  resolve: (p: PreparedPrompt) => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal;
}

interface Slot {
  worker: Worker;
  ready: Promise<void>;
  job: Job | undefined;
}

const workerUrl = new URL("./_prompt-worker.ts", import.meta.url);

export function createPromptPool(opts: { tokenizerDir: string; size?: number; cacheDir?: string }): PromptPool {
  const size = Math.max(1, opts.size ?? 1);
  const waiting: Job[] = [];
  const slots: Slot[] = [];
  let nextId = 1;
  let closed = false;

  const spawn = (): Slot => {
    const worker = new Worker(workerUrl.href);
    worker.unref();
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    const slot: Slot = { worker, job: undefined, ready: new Promise((res, rej) => ((readyResolve = res), (readyReject = rej))) };
    slot.ready.catch(() => {});
    worker.onmessage = (event: MessageEvent<PromptWorkerReply>) => {
      const m = event.data;
      if (m.type === "ready") return readyResolve();
      if (m.type === "failed") return readyReject(new Error(`the prompt worker could not load the tokenizer: ${m.message}`));
      const job = slot.job;
      if (!job || job.id !== m.id) return;
      slot.job = undefined;
      if (m.type === "result") job.resolve(m.prompt);
      else if (m.api) job.reject(new ApiError(m.api.status, m.api.message, "invalid_request_error", m.api.param, m.api.code));
      else job.reject(Object.assign(new Error(`prompt worker: ${m.message}`), { stack: m.stack }));
      pump();
    };
    worker.onerror = (e) => {
      readyReject(new Error(`the prompt worker failed: ${e.message}`));
      replace(slot, new Error(`the prompt worker failed: ${e.message}`));
    };
    worker.postMessage({ type: "init", tokenizerDir: opts.tokenizerDir, cacheDir: opts.cacheDir } satisfies PromptWorkerRequest);
    return slot;
  };

  /** End a worker (its job failed or was abandoned) and start a fresh one in its place. */
  const replace = (slot: Slot, reason: unknown) => {
    const i = slots.indexOf(slot);
    if (i < 0) return;
    slot.worker.terminate();
    slot.job?.reject(reason);
    slot.job = undefined;
    if (closed) slots.splice(i, 1);
    else slots[i] = spawn();
    pump();
  };

  const pump = () => {
    for (const slot of slots) {
      if (slot.job || waiting.length === 0) continue;
      const job = waiting.shift()!;
      slot.job = job;
      slot.ready.then(
        () => {
          if (slot.job === job) slot.worker.postMessage(job.message);
        },
        (e) => {
          if (slot.job !== job) return;
          slot.job = undefined;
          job.reject(new ApiError(500, (e as Error).message, "server_error"));
        },
      );
    }
  };

  for (let i = 0; i < size; i++) slots.push(spawn());

  const ready = Promise.all(slots.map((s) => s.ready)).then(() => {});
  return {
    ready,
    prepare(req, contextTokens, defaults, signal) {
      if (closed) return Promise.reject(new ApiError(503, "the server is shutting down", "service_unavailable", null, "shutting_down"));
      if (signal?.aborted) return Promise.reject(signal.reason);
      return new Promise<PreparedPrompt>((resolve, reject) => {
        const id = nextId++;
        const job: Job = { id, message: { type: "prepare", id, req, contextTokens, defaults }, resolve, reject, signal };
        const onAbort = () => {
          const w = waiting.indexOf(job);
          if (w >= 0) {
            waiting.splice(w, 1);
            reject(signal!.reason);
            return;
          }
          const slot = slots.find((s) => s.job === job);
          if (slot) replace(slot, signal!.reason); // a huge prompt nobody waits for: stop tokenizing it
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        const done = () => signal?.removeEventListener("abort", onAbort);
        job.resolve = (p) => {
          done();
          resolve(p);
        };
        job.reject = (e) => {
          done();
          reject(e);
        };
        waiting.push(job);
        pump();
      });
    },
    get nPending() {
      return waiting.length + slots.filter((s) => s.job).length;
    },
    close() {
      closed = true;
      for (const job of waiting.splice(0)) job.reject(new ApiError(503, "the server is shutting down", "service_unavailable", null, "shutting_down"));
      for (const slot of slots.splice(0)) {
        slot.worker.terminate();
        slot.job?.reject(new ApiError(503, "the server is shutting down", "service_unavailable", null, "shutting_down"));
      }
    },
  };
}
