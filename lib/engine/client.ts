// The engine child process: start it with flags built from options, speak native/PROTOCOL.md over its stdio.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import {
  type Engine,
  EngineError,
  type EngineReady,
  type EngineStartOptions,
  type GenerateEvent,
  type GenerateRequest,
} from "./types.ts";

export { EngineError } from "./types.ts";
export type { Engine, EngineReady, GenerateEvent, GenerateRequest } from "./types.ts";

/** The engine binary of a checkout (default: this one), built by `make engine`. */
export function engineBinaryPath(root = join(import.meta.dir, "..", "..")): string {
  return join(root, "native", "build", "flashchat-engine");
}

/** Command-line flags for the engine (everything it needs; it reads no config). */
export function engineArgv(opts: EngineStartOptions): string[] {
  const argv = ["--artifacts", opts.artifactsDir];
  if (opts.expertsDir) argv.push("--experts", opts.expertsDir);
  if (opts.threads != null) argv.push("--threads", String(opts.threads));
  if (opts.context) argv.push("--context", String(opts.context));
  if (opts.kvType) argv.push("--kv-type", opts.kvType);
  if (opts.activeExperts != null) argv.push("--active-experts", String(opts.activeExperts));
  if (opts.snapshotBudgetMb != null) argv.push("--snapshot-budget-mb", String(opts.snapshotBudgetMb));
  if (opts.expertIo) argv.push("--expert-io", opts.expertIo);
  if (opts.backend) argv.push("--backend", opts.backend);
  return argv;
}

type Message = { type: string; id?: string; code?: string; message?: string } & Record<string, unknown>;

/** Split a byte stream into lines and hand each to `onLine`; resolves at end of stream. */
async function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    buf += decoder.decode(chunk, { stream: true });
    let nl = buf.indexOf("\n");
    while (nl >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) onLine(line);
      nl = buf.indexOf("\n");
    }
  }
  buf += decoder.decode();
  if (buf.trim()) onLine(buf);
}

/**
 * Start the engine and resolve once it reports `ready`. A load failure rejects with
 * EngineError(message, "load_failed"); an engine that dies before `ready` with code "exited".
 */
export async function startEngine(opts: EngineStartOptions): Promise<Engine> {
  const binary = opts.binary ?? engineBinaryPath();
  const proc = Bun.spawn([binary, ...engineArgv(opts)], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  const exited: Promise<number | string> = proc.exited.then(() => proc.signalCode ?? proc.exitCode ?? 0);
  let dead = false;
  const stderrTail: string[] = [];
  void readLines(proc.stderr, (line) => {
    stderrTail.push(line);
    if (stderrTail.length > 20) stderrTail.shift();
    opts.onLog?.(line);
  }).catch(() => {});

  // Replies are routed by request id; each waiter takes messages until it says it is done.
  const waiters = new Map<string, (m: Message) => void>();
  let readyResolve!: (m: Message) => void;
  let readyReject!: (e: Error) => void;
  const readyPromise = new Promise<Message>((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  let gotReady = false;
  // Watchdog input: when the engine last wrote anything, and since when a request has been running.
  let lastOutputAt = performance.now();
  let nRunning = 0;
  let runningSince = 0;
  let killed: { message: string; code: string } | undefined;
  void readLines(proc.stdout, (line) => {
    lastOutputAt = performance.now();
    let m: Message;
    try {
      m = JSON.parse(line) as Message;
    } catch {
      opts.onLog?.(`engine: unparsable line on stdout: ${line.slice(0, 200)}`);
      return;
    }
    if (!gotReady) {
      if (m.type === "ready") {
        gotReady = true;
        readyResolve(m);
      } else if (m.type === "error") readyReject(new EngineError(m.message ?? "the engine failed to load", m.code ?? "load_failed"));
      return;
    }
    const w = m.id !== undefined ? waiters.get(m.id) : undefined;
    if (w) w(m);
    else if (m.type === "error") opts.onLog?.(`engine: ${m.code}: ${m.message}`);
  }).catch(() => {});

  void exited.then((code) => {
    dead = true;
    const why = killed?.message ?? `the engine exited (${code})${stderrTail.length ? `: ${stderrTail.at(-1)}` : ""}`;
    if (!gotReady) readyReject(new EngineError(why, "exited"));
    for (const w of [...waiters.values()]) w({ type: "error", code: killed?.code ?? "exited", message: why });
  });

  let ready: EngineReady;
  try {
    ready = (await readyPromise) as unknown as EngineReady;
  } catch (e) {
    proc.kill();
    await exited;
    throw e;
  }

  let nextId = 0;
  const send = (req: Record<string, unknown>) => {
    if (dead) throw new EngineError("the engine is not running", "exited");
    proc.stdin.write(`${JSON.stringify(req)}\n`);
    proc.stdin.flush();
  };

  // One request at a time (the engine answers `busy` otherwise); cancel and stats bypass the queue.
  let queue: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const tracked = async () => {
      if (nRunning++ === 0) runningSince = performance.now();
      try {
        return await fn();
      } finally {
        nRunning--;
      }
    };
    const run = queue.then(tracked, tracked);
    queue = run.catch(() => {});
    return run;
  };

  /** Send `req` and collect replies until `isLast` says so; an error reply rejects. */
  const request = (req: Record<string, unknown>, onMessage?: (m: Message) => void, isLast: (m: Message) => boolean = () => true) => {
    const id = `r${++nextId}`;
    return new Promise<Message>((resolve, reject) => {
      waiters.set(id, (m) => {
        if (m.type === "error") {
          waiters.delete(id);
          reject(new EngineError(m.message ?? "engine error", m.code ?? "internal"));
          return;
        }
        onMessage?.(m);
        if (isLast(m)) {
          waiters.delete(id);
          resolve(m);
        }
      });
      try {
        send({ ...req, id });
      } catch (e) {
        waiters.delete(id);
        reject(e);
      }
    });
  };

  async function* generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateEvent> {
    const events: GenerateEvent[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    let failure: unknown;
    let id = "";
    const onAbort = () => {
      if (id && !finished && !dead) send({ op: "cancel", id });
    };
    const { grammar, ...wire } = req;
    // constrained: the mask of step N goes out when token N-1 arrives (step 0 right after the request)
    let masks: Promise<void> = Promise.resolve();
    let step = 0;
    const sendMask = (n: number) => {
      masks = masks.then(async () => {
        const bits = await grammar!.next();
        if (finished || dead) return;
        // nothing more may follow, yet the engine did not stop (a stop token the request did not list): end it
        if (!bits) send({ op: "cancel", id });
        else send({ op: "mask", id, step: n, bits: Buffer.from(bits.buffer, bits.byteOffset, bits.byteLength).toString("base64") });
      }).catch((e) => {
        failure ??= e;
        onAbort();
      });
    };
    const done = exclusive(async () => {
      const p = request(
        grammar ? { op: "generate", ...wire, constrained: true } : { op: "generate", ...wire },
        (m) => {
          if (grammar && m.type === "token") {
            grammar.accept(m.token as number);
            sendMask(++step);
          }
          if (m.type === "prompt" || m.type === "progress" || m.type === "token" || m.type === "done") {
            const { id: _id, ...ev } = m;
            events.push(ev as unknown as GenerateEvent);
            wake?.();
          }
        },
        (m) => m.type === "done",
      );
      id = `r${nextId}`;
      if (grammar) sendMask(0);
      if (signal?.aborted) onAbort();
      return p;
    });
    signal?.addEventListener("abort", onAbort, { once: true });
    done.then(
      () => {
        finished = true;
        wake?.();
      },
      (e) => {
        finished = true;
        failure = e;
        wake?.();
      },
    );
    try {
      for (;;) {
        while (events.length) yield events.shift()!;
        if (finished) break;
        await new Promise<void>((r) => {
          wake = r;
        });
        wake = undefined;
      }
      while (events.length) yield events.shift()!;
      if (failure) throw failure;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (!finished) {
        // the consumer stopped early: cancel and let the engine finish the request
        onAbort();
        await done.catch(() => {});
      }
      if (grammar) {
        // however the generate ended (stop, length, cancel, error): the last mask computed, then the grammar freed
        await masks;
        grammar.dispose();
      }
    }
  }

  const logits = (tokens: number[]) =>
    exclusive(async () => {
      const dir = mkdtempSync(join(tmpdir(), "flashchat-logits-"));
      try {
        const out = join(dir, "logits.f32");
        await request({ op: "logits", tokens, out });
        const bytes = readFileSync(out);
        return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

  const kill = (message: string, code = "killed") => {
    if (dead) return;
    killed ??= { message, code };
    proc.kill("SIGKILL");
  };

  // `shutdown`, then SIGKILL by pid if the engine has not exited within the deadline (a stopped or spinning
  // engine never reads the request; SIGTERM would stay pending on a stopped one).
  const close = async (deadlineMs = 3000): Promise<"exited" | "killed"> => {
    if (dead) return "exited";
    try {
      send({ op: "shutdown" });
      proc.stdin.end();
    } catch {
      // already gone
    }
    let how: "exited" | "killed" = "exited";
    const t = setTimeout(() => {
      how = "killed";
      kill(`the engine did not exit within ${deadlineMs} ms of shutdown; killed`);
    }, deadlineMs);
    await exited;
    clearTimeout(t);
    return how;
  };

  return {
    ready,
    pid: proc.pid,
    generate,
    logits,
    reset: () => exclusive(() => request({ op: "reset" })).then(() => {}),
    stats: async () => {
      const { type: _t, id: _i, ...rest } = await request({ op: "stats" });
      return rest;
    },
    saveSnapshots: (path: string) => exclusive(() => request({ op: "snapshot_save", path })).then(() => {}),
    loadSnapshots: (path: string) => exclusive(() => request({ op: "snapshot_load", path })).then(() => {}),
    exited,
    close,
    kill,
    activity: () => {
      const now = performance.now();
      return { busy: nRunning > 0, silentMs: nRunning > 0 ? now - Math.max(lastOutputAt, runningSince) : 0 };
    },
  };
}
