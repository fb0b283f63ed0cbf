// An in-process stand-in for the engine child, speaking the Engine interface of lib/engine/types.ts:
// prefix snapshots (cached_tokens), seeded sampling over printable byte tokens, force_tokens, cancel, crash,
// stalls (stop answering), made-up logprobs in the protocol's shape.
// HTTP-layer tests use it to stay fast; the end-to-end tests run the real engine binary.
import { type Engine, EngineError, type EngineStartOptions, type GenerateEvent, type GenerateRequest } from "../../lib/engine/types.ts";

export interface FakeEngineOptions {
  context?: number;
  tokenDelayMs?: number;
  /** Make startEngine fail (load_failed) this many times. */
  failStarts?: number;
  /** Resolve startEngine only when this promise does (to observe "loading"). */
  startGate?: Promise<void>;
}

export interface FakeEngine extends Engine {
  crash(): void;
  /** Stop answering (as a deadlocked engine): the running and later generations write nothing until resume(). */
  stall(): void;
  resume(): void;
  /** How the engine ended: "SIGKILL" after kill(), 0 after close(). */
  readonly exitedWith: number | string | undefined;
  readonly nGenerates: number;
}

export function createFakeEngineFactory(opts: FakeEngineOptions = {}) {
  const engines: FakeEngine[] = [];
  let failStarts = opts.failStarts ?? 0;
  let nextPid = 90000;
  const start = async (_o: EngineStartOptions): Promise<Engine> => {
    await Bun.sleep(5);
    if (opts.startGate) await opts.startGate;
    if (failStarts-- > 0) throw new EngineError("cannot open model_weights.bin", "load_failed");
    const e = createFakeEngine(nextPid++, opts);
    engines.push(e);
    return e;
  };
  return { start, engines };
}

function createFakeEngine(pid: number, opts: FakeEngineOptions): FakeEngine {
  const snapshots: number[][] = [];
  let exitResolve!: (v: number | string) => void;
  const exited = new Promise<number | string>((r) => {
    exitResolve = r;
  });
  let dead = false;
  let busy = false;
  let nGenerates = 0;
  let stalled = false;
  let lastOutputAt = performance.now();
  let runningSince = 0;
  let exitedWith: number | string | undefined;
  let killed: { message: string; code: string } | undefined;
  const deathWaiters = new Set<() => void>();

  const die = (code: number | string) => {
    if (dead) return;
    dead = true;
    exitedWith = code;
    for (const w of deathWaiters) w();
    exitResolve(code);
  };

  async function* generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateEvent> {
    if (dead) throw new EngineError("the engine is not running", "exited");
    if (busy) throw new EngineError("a generation is already running", "busy");
    busy = true;
    runningSince = performance.now();
    nGenerates++;
    try {
      const ctx = opts.context ?? 4096;
      let cached = 0;
      for (const s of snapshots) if (s.length <= req.tokens.length && s.length > cached && s.every((t, i) => t === req.tokens[i])) cached = s.length;
      for (const at of [...(req.snapshot_at ?? []), req.tokens.length]) if (at > 0 && at <= req.tokens.length) snapshots.push(req.tokens.slice(0, at));
      const t0 = performance.now();
      while (stalled && !dead) await Bun.sleep(5);
      if (dead) throw new EngineError(killed?.message ?? "the engine exited (SIGKILL)", killed?.code ?? "exited");
      lastOutputAt = performance.now();
      yield { type: "prompt", prompt_tokens: req.tokens.length, cached_tokens: cached };
      let rng = (req.sampling?.seed ?? Math.floor(Math.random() * 1e9)) >>> 0;
      const stop = new Set(req.stop_tokens ?? []);
      let n = 0;
      let reason: "stop" | "length" | "cancelled" = "length";
      const limit = Math.min(req.max_tokens, ctx - req.tokens.length);
      while (n < limit) {
        await new Promise<void>((resolve) => {
          const done = () => {
            deathWaiters.delete(done);
            resolve();
          };
          deathWaiters.add(done);
          const tick = () => (stalled ? setTimeout(tick, 5) : done());
          setTimeout(tick, opts.tokenDelayMs ?? 1);
        });
        if (dead) throw new EngineError(killed?.message ?? "the engine exited (SIGKILL)", killed?.code ?? "exited");
        lastOutputAt = performance.now();
        if (signal?.aborted) {
          reason = "cancelled";
          break;
        }
        let token: number;
        if (req.force_tokens) {
          if (n >= req.force_tokens.length) break;
          token = req.force_tokens[n]!;
        } else {
          rng = (Math.imul(rng, 1664525) + 1013904223) >>> 0;
          token = rng % 94; // printable ASCII byte tokens of the tiny tokenizer
        }
        n++;
        if (req.logprobs) {
          // made-up but well-formed: the sampled token first, then the next byte tokens, each less likely
          const top = Array.from({ length: req.top_logprobs ?? 0 }, (_, i) => ({ token: i === 0 ? token : (token + i) % 94, logprob: -0.25 - i }));
          yield { type: "token", token, logprob: -0.25, top_logprobs: top };
        } else yield { type: "token", token };
        if (stop.has(token)) {
          reason = "stop";
          break;
        }
      }
      if (req.force_tokens && reason === "length" && n >= req.force_tokens.length && n < limit) reason = "stop";
      yield {
        type: "done", reason, prompt_tokens: req.tokens.length, cached_tokens: cached, completion_tokens: n,
        prefill_ms: 1, decode_ms: Math.max(1, performance.now() - t0), expert_bytes: 0, io_wait_ms: 0,
      };
    } finally {
      busy = false;
    }
  }

  return {
    ready: {
      type: "ready", protocol: 1, backend: "fake", threads: 1, context: opts.context ?? 4096,
      model: { vocab_size: 512, hidden_size: 128, num_hidden_layers: 4, num_experts: 8, active_experts: 2, eos_token_id: [507] },
      dense_bytes: 0, expert_bytes_per_token: 0,
    },
    pid,
    generate,
    logits: async () => new Float32Array(),
    reset: async () => {},
    stats: async () => ({}),
    saveSnapshots: async (path) => {
      await Bun.write(path, JSON.stringify(snapshots));
    },
    loadSnapshots: async (path) => {
      snapshots.push(...((await Bun.file(path).json()) as number[][]));
    },
    exited,
    close: async () => {
      if (stalled) {
        die("SIGKILL");
        return "killed";
      }
      die(0);
      return "exited";
    },
    kill: (message, code = "killed") => {
      killed ??= { message, code };
      die("SIGKILL");
    },
    activity: () => ({ busy, silentMs: busy ? performance.now() - Math.max(lastOutputAt, runningSince) : 0 }),
    crash: () => die("SIGKILL"),
    stall: () => {
      stalled = true;
    },
    resume: () => {
      stalled = false;
    },
    get exitedWith() {
      return exitedWith;
    },
    get nGenerates() {
      return nGenerates;
    },
  };
}
