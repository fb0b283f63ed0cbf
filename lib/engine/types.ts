// The TypeScript face of the engine protocol (native/PROTOCOL.md): what lib/engine/client.ts offers its callers.

export interface EngineStartOptions {
  /** Engine binary; default native/build/flashchat-engine of this checkout. */
  binary?: string;
  /** Folder holding model_weights.bin + model_weights.json. */
  artifactsDir: string;
  /** Packed experts folder; default <artifactsDir>/packed_experts. */
  expertsDir?: string;
  threads?: number | null;
  /** Context length in tokens; default (or 0) the model's maximum, lowered by the engine to what fits in memory. */
  context?: number;
  /** K/V cache element type (engine --kv-type); default f16. */
  kvType?: "f16" | "bf16" | "q8" | "f32";
  activeExperts?: number | null;
  snapshotBudgetMb?: number;
  /**
   * How routed experts reach the kernels (engine --expert-io): "auto" (default: loaded up front and used in place when
   * the expert files fit in half the available memory, else streamed with pread), "pread", "mmap" or "populate".
   */
  expertIo?: "auto" | "pread" | "mmap" | "populate";
  /**
   * Engine --backend: "cpu", "cpu:N", "metal" (macOS builds), "metal-emu" (the Metal backend on the CPU emulator) or
   * "auto" (metal on macOS with a GPU, else cpu); default the engine's own (cpu).
   */
  backend?: string;
  /** Each line the engine writes on stderr. */
  onLog?: (line: string) => void;
}

export interface EngineModelInfo {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_experts: number;
  active_experts: number;
  eos_token_id: number[];
}

export interface EngineReady {
  type: "ready";
  protocol: number;
  backend: string;
  threads: number;
  context: number;
  model: EngineModelInfo;
  dense_bytes: number;
  expert_bytes_per_token: number;
  /** Kernel variant picked at run time (generic, avx2, avx512). */
  kernels?: string;
  expert_bits?: number;
  /** how the engine reads the experts, as decided at load */
  expert_io?: "pread" | "mmap" | "populate";
  snapshot_budget_bytes?: number;
  /** the model's own maximum context (max_position_embeddings); `context` is what this engine holds */
  max_context?: number;
  kv_type?: "f16" | "bf16" | "q8" | "f32";
  /** K/V cache bytes per token of context (all full-attention layers, K and V) */
  kv_bytes_per_token?: number;
}

export interface SamplingParams {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  repetition_penalty?: number;
  seed?: number;
}

export interface GenerateRequest {
  tokens: number[];
  max_tokens: number;
  sampling?: SamplingParams;
  stop_tokens?: number[];
  snapshot_at?: number[];
  /** Tests: emit exactly these tokens instead of sampling. */
  force_tokens?: number[];
  /** Report each token's log-probability (log-softmax of the logits plus logit_bias, before penalties and temperature). */
  logprobs?: boolean;
  /** 0..20: also report that many most likely tokens per position (implies logprobs). */
  top_logprobs?: number;
  /** token id (decimal string) -> bias in [-100, 100], added to the logits before sampling (greedy too). */
  logit_bias?: Record<string, number>;
  /** Constrained decoding: the client sends each step's allowed tokens (`mask` op) from this; not sent as such. */
  grammar?: TokenGrammar;
}

/** Allowed tokens step by step (lib/server/structured-output.ts implements it with a grammar matcher). */
export interface TokenGrammar {
  /** Bits of the allowed next tokens (bit i&7 of byte i>>3 = token i), or null when nothing more may follow. */
  next(): Promise<Uint8Array | null>;
  /** The engine emitted `token`. */
  accept(token: number): void;
  /** Free what the grammar holds (its matcher); called once the generate ended, however it ended. Idempotent. */
  dispose(): void;
}

export type GenerateEvent =
  | { type: "prompt"; prompt_tokens: number; cached_tokens: number }
  | { type: "token"; token: number; logprob?: number; top_logprobs?: { token: number; logprob: number }[] }
  | {
      type: "done";
      reason: "stop" | "length" | "cancelled" | "evaluated";
      prompt_tokens: number;
      cached_tokens: number;
      completion_tokens: number;
      prefill_ms: number;
      decode_ms: number;
      expert_bytes: number;
      io_wait_ms: number;
    }
  /** while the prompt is evaluated, at most about once a second (a heartbeat for the watchdog) */
  | { type: "progress"; prompt_tokens_done: number; prompt_tokens: number };

/** Raised for protocol `error` replies (code as in PROTOCOL.md) and for an engine that died. */
export class EngineError extends Error {
  override name = "EngineError";
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/**
 * What lib/engine/client.ts exports (implemented there):
 *   startEngine(opts: EngineStartOptions): Promise<Engine>   // resolves after `ready`; rejects with EngineError("load_failed")
 */
export interface Engine {
  readonly ready: EngineReady;
  readonly pid: number;
  /** Stream one generation. Aborting the signal sends `cancel`; the iterator then ends with done/cancelled. One at a time. */
  generate(req: GenerateRequest, signal?: AbortSignal): AsyncIterable<GenerateEvent>;
  /** Logits of every position from a fresh state, float32 [tokens.length, vocab]. */
  logits(tokens: number[]): Promise<Float32Array>;
  reset(): Promise<void>;
  stats(): Promise<Record<string, unknown>>;
  saveSnapshots(path: string): Promise<void>;
  loadSnapshots(path: string): Promise<void>;
  /** Resolves with the exit code (or signal name) when the process ends, for whatever reason. */
  readonly exited: Promise<number | string>;
  /** Shutdown op, then SIGKILL by pid after `deadlineMs` (default 3000): says which ended it. */
  close(deadlineMs?: number): Promise<"exited" | "killed">;
  /** SIGKILL by pid now; requests in flight fail with EngineError(message, code). */
  kill(message: string, code?: string): void;
  /** Watchdog input: is a request running, and for how long has the engine written nothing while it runs. */
  activity(): EngineActivity;
}

export interface EngineActivity {
  busy: boolean;
  /** Milliseconds since the engine's last line (or since the running request started, if later); 0 when idle. */
  silentMs: number;
}
