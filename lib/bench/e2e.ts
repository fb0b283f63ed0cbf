// End-to-end benchmark through the real server (its own process, 127.0.0.1, port 0): time to first token, prefill and
// decode tok/s for a short and a long prompt (and the TTFT of an 8k-token prompt), with a warm page cache and a cold
// one (the model's files evicted first).
//   bun scripts/benchmark.ts e2e --model demo [--runs 3] [--no-cold] [--ttft-tokens 8192]
//   bun scripts/benchmark.ts e2e --artifacts DIR --tokenizer DIR
import { existsSync } from "node:fs";
import { type ArgsDef, defineCommand } from "citty";
import { basename, join, resolve } from "pathe";
import { globalArgs, jsonArgs, modelArgs, parseIntFlag, yesArgs } from "../cli.ts";
import { loadFlashchatConfig } from "../config/index.ts";
import type { ResolvedConfig } from "../config/schema.ts";
import type { EngineReady } from "../engine/types.ts";
import { UserError } from "../errors.ts";
import { logger } from "../log.ts";
import { runEngineBench } from "./engine.ts";
import { type BenchRecord, appendHistory, historyPath } from "./history.ts";
import { checkMachineLoad, type EvictResult, evictFiles, listFiles, type LoadProfileOptions, loadGitCommit, loadMachineInfo, loadMachineProfile, readBandwidthFor } from "./machine.ts";
import { renderBenchTable } from "./report.ts";
import { type Ceilings, type TokenBytes, loadTokenBytes, resolveCeilings } from "./roofline.ts";
import { type Summary, formatNumber, summarize } from "./stats.ts";

export interface BenchServerOptions {
  artifactsDir: string;
  expertsDir?: string;
  tokenizerDir: string;
  threads?: number | null;
  activeExperts?: number | null;
  /** context in tokens (KV cache) */
  context?: number;
  /** engine binary (default: lib/engine's) */
  engineBinary?: string;
  logFile?: string;
  /** prompt workers (ServerOptions.promptWorkers; 0 = render and tokenize on the event loop) */
  promptWorkers?: number;
}

export interface BenchServer {
  url: string;
  ready: EngineReady;
  stop(): Promise<void>;
}

const serverScript = join(import.meta.dir, "_e2e-server.ts");

/** Start the real server in a child process on 127.0.0.1, port 0; resolves once its engine is ready. */
export async function startBenchServer(o: BenchServerOptions): Promise<BenchServer> {
  const serverOpts = {
    host: "127.0.0.1",
    port: 0,
    modelId: "bench",
    tokenizerDir: o.tokenizerDir,
    engine: {
      artifactsDir: o.artifactsDir,
      expertsDir: o.expertsDir || undefined,
      threads: o.threads ?? null,
      activeExperts: o.activeExperts ?? null,
      context: o.context ?? 4096,
      ...(o.engineBinary ? { binary: o.engineBinary } : {}),
    },
    defaults: { maxTokens: 256, temperature: 0, topP: 1 },
    logFile: o.logFile,
    ...(o.promptWorkers !== undefined ? { promptWorkers: o.promptWorkers } : {}),
  };
  const proc = Bun.spawn([process.execPath, serverScript, JSON.stringify(serverOpts)], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const stderr = new Response(proc.stderr).text();
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  // keep draining stdout so the server can never block on a full pipe
  void (async () => {
    while (!(await reader.read()).done);
  })().catch(() => {});
  const line = text.split("\n")[0]!;
  let msg: { url?: string; engine?: EngineReady; error?: string } = {};
  try {
    msg = JSON.parse(line);
  } catch {
    // fall through: report what the server said
  }
  if (!msg.url) {
    proc.kill();
    await proc.exited;
    const why = msg.error ?? ((await stderr).trim().split("\n").slice(-3).join(" ") || `exit ${proc.exitCode}`);
    throw new UserError(`the server did not start for the benchmark: ${why}`);
  }
  return {
    url: msg.url,
    ready: msg.engine!,
    async stop() {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}

export interface StreamTiming {
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  /** request sent -> first generated text */
  ttftMs: number;
  /** first generated text -> end of the stream */
  decodeMs: number;
  totalMs: number;
}

export interface TimedStream {
  /** request sent, first generated text / reasoning / tool call, stream ended (performance.now() ms) */
  t0: number;
  tFirst: number;
  tEnd: number;
  /** the generated text (content deltas) */
  text: string;
  usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens?: number } };
}

/** POST a streamed chat completion and time it from the client's side: to the first delta and to the end. */
export async function postTimedStream(url: string, body: Record<string, unknown>): Promise<TimedStream> {
  const t0 = performance.now();
  // no client timeout: a long prompt on a slow machine streams nothing until its first token (Bun's fetch would give up
  // after 5 minutes of silence)
  const init = { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), timeout: false };
  const res = await fetch(`${url}/v1/chat/completions`, init as RequestInit);
  if (!res.ok || !res.body) throw new Error(`server answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  let tFirst = 0;
  let text = "";
  let usage: TimedStream["usage"] | undefined;
  let buf = "";
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const l of frame.split("\n")) {
        if (!l.startsWith("data: ") || l === "data: [DONE]") continue;
        const data = JSON.parse(l.slice(6));
        if (data.error) throw new Error(`server error: ${data.error.message}`);
        const delta = data.choices?.[0]?.delta;
        if (!tFirst && delta && (delta.content || delta.reasoning_content || delta.tool_calls)) tFirst = performance.now();
        text += delta?.content ?? "";
        if (data.usage) usage = data.usage;
      }
    }
  }
  const tEnd = performance.now();
  if (!usage) throw new Error("the stream ended without usage");
  return { t0, tFirst: tFirst || tEnd, tEnd, text, usage };
}

/** One streamed chat completion, timed from the client's side of the HTTP connection. */
export async function timeChatStream(url: string, prompt: string, maxTokens: number, seed = 1): Promise<StreamTiming> {
  const body = {
    messages: [{ role: "user", content: prompt }],
    max_tokens: maxTokens,
    temperature: 0,
    seed,
    stream: true,
    stream_options: { include_usage: true },
    chat_template_kwargs: { enable_thinking: false },
  };
  const { t0, tFirst, tEnd, usage } = await postTimedStream(url, body);
  return {
    promptTokens: usage.prompt_tokens,
    cachedTokens: usage.prompt_tokens_details?.cached_tokens ?? 0,
    completionTokens: usage.completion_tokens,
    ttftMs: tFirst - t0,
    decodeMs: tEnd - tFirst,
    totalMs: tEnd - t0,
  };
}

const WORDS = (
  "the model reads each expert from the disk when a token needs it and keeps the dense weights in memory so that " +
  "a large mixture of experts runs on a small machine while the page cache holds what was read recently and the " +
  "kernels multiply quantized matrices by vectors one layer after another until the next token is sampled"
).split(" ");

/** A prompt of about `nWords` words; `nonce` first, so no two runs share a cached prefix beyond the template's. */
export function createPrompt(nWords: number, nonce: number): string {
  const words = [`Run ${nonce}:`];
  for (let i = 0; i < nWords; i++) words.push(WORDS[(i * 7 + nonce) % WORDS.length]!);
  return `${words.join(" ")}.`;
}

export type CacheState = "warm" | "cold";

export interface E2eCase {
  /** short, long, or the TTFT prompt's size ("8k") */
  prompt: string;
  cache: CacheState;
  promptTokens: Summary;
  ttftMs: Summary;
  /** uncached prompt tokens / time to first token (includes HTTP, template, tokenizer and the first token) */
  prefillTokS: Summary;
  /** (completion tokens - 1) / time from the first to the last token; null if every run stopped after one token */
  decodeTokS: Summary | null;
}

export interface E2eOptions {
  /** words in the short and long prompts (tokens are about 1.1 x words plus the template's) */
  shortWords: number;
  longWords: number;
  decodeTokens: number;
  warmup: number;
  runs: number;
  /** also measure with a cold page cache (the model's files evicted before each run) */
  cold: boolean;
  /** drops the model's files from the page cache (cold runs); without it there are no cold runs */
  evict?: () => Promise<EvictResult>;
  /** a prompt of about this many tokens, timed to its first token (warm cache, `ttftRuns` runs); 0 = none */
  ttftTokens?: number;
  ttftRuns?: number;
  /** called before each case */
  onCase?: (label: string) => void;
}

export interface E2eResult {
  cases: E2eCase[];
  /** how the cold runs went: "page cache dropped (…)" or why there are none */
  coldNote: string;
}

/** Run the short and long prompt, warm then cold, against a running server. */
export async function runE2e(url: string, o: E2eOptions): Promise<E2eResult> {
  const cases: E2eCase[] = [];
  let nonce = 1;
  let coldNote = "cold cache not requested";
  const measure = async (prompt: string, cache: CacheState, warmup: number, words: number, nRuns = o.runs, decodeTokens = o.decodeTokens) => {
    o.onCase?.(`${prompt} prompt, ${cache} cache`);
    const runs: StreamTiming[] = [];
    for (let i = 0; i < warmup + nRuns; i++) {
      if (cache === "cold") {
        if (!o.evict) {
          coldNote = "no way to evict the model's files was given";
          return false;
        }
        const d = await o.evict();
        coldNote = d.note;
        if (!d.ok) return false;
      }
      const t = await timeChatStream(url, createPrompt(words, nonce++), decodeTokens, i + 1);
      if (i >= warmup) runs.push(t);
    }
    // a run that stopped after its first token has no decode interval to time
    const decode = runs.filter((r) => r.completionTokens > 1 && r.decodeMs > 0).map((r) => ((r.completionTokens - 1) * 1000) / r.decodeMs);
    cases.push({
      prompt,
      cache,
      promptTokens: summarize(runs.map((r) => r.promptTokens)),
      ttftMs: summarize(runs.map((r) => r.ttftMs)),
      prefillTokS: summarize(runs.map((r) => ((r.promptTokens - r.cachedTokens) * 1000) / r.ttftMs)),
      decodeTokS: decode.length ? summarize(decode) : null,
    });
    return true;
  };
  const words = (p: "short" | "long") => (p === "short" ? o.shortWords : o.longWords);
  for (const p of ["short", "long"] as const) await measure(p, "warm", o.warmup, words(p));
  if (o.ttftTokens) {
    // sized with this tokenizer's tokens per word, as the long prompt just measured them; the table shows the real count
    const longCase = cases.find((c) => c.prompt === "long");
    const perWord = longCase ? longCase.promptTokens.median / (o.longWords + 1) : 1.1;
    // as many tokens as the other rows: with 2, decode tok/s was one gap between two SSE chunks that can arrive together
    await measure(o.ttftTokens >= 1024 ? `${Math.round(o.ttftTokens / 1024)}k` : `${o.ttftTokens}tok`, "warm", 0, Math.max(1, Math.round(o.ttftTokens / perWord)), o.ttftRuns ?? 2);
  }
  if (o.cold) {
    // the warm runs above were the warm-up of the whole path; each cold run evicts the model's files first
    for (const p of ["short", "long"] as const) if (!(await measure(p, "cold", 0, words(p)))) break;
  }
  return { cases, coldNote };
}

/** History records of an e2e result; decode figures carry the ceilings that apply to their cache state. */
export function e2eRecords(r: E2eResult, base: Omit<BenchRecord, "figure" | "unit" | "stats" | "ceilings" | "target">, ceilings?: Ceilings): BenchRecord[] {
  const out: BenchRecord[] = [];
  for (const c of r.cases) {
    const tag = `${c.prompt}:${c.cache}`;
    const rec = (figure: string, unit: string, stats: Summary, ceil?: Partial<Ceilings>): BenchRecord => ({ ...base, target: "e2e", figure: `${figure}:${tag}`, unit, stats, ceilings: ceil });
    out.push(rec("ttft_ms", "ms", c.ttftMs), rec("prefill_tok_s", "tok/s", c.prefillTokS));
    const ceil = ceilings ? (c.cache === "cold" ? { disk: ceilings.disk } : { memory: ceilings.memory, kernel: ceilings.kernel }) : undefined;
    if (c.decodeTokS) out.push(rec("decode_tok_s", "tok/s", c.decodeTokS, ceil));
  }
  return out;
}

/** The e2e cases as a table: medians with ranges, decode beside its ceiling. */
export function renderE2eTable(r: E2eResult, ceilings?: Ceilings): string {
  const f = (s: Summary) => `${formatNumber(s.median)} (${formatNumber(s.min)}–${formatNumber(s.max)})`;
  const rows = r.cases.map((c) => {
    const ceil = !ceilings ? null : c.cache === "cold" ? ceilings.disk : ceilings.memory;
    const d = c.decodeTokS;
    const pct = ceil && d ? `${Math.round((100 * d.median) / ceil)}% of ${formatNumber(ceil)}` : "";
    const kpct = ceilings?.kernel && d && c.cache === "warm" ? `${Math.round((100 * d.median) / ceilings.kernel)}% of ${formatNumber(ceilings.kernel)}` : "";
    return [c.prompt, c.cache, formatNumber(c.promptTokens.median), f(c.ttftMs), f(c.prefillTokS), d ? f(d) : "n/a", pct, kpct];
  });
  return renderBenchTable(["prompt", "cache", "tokens", "TTFT ms", "prefill tok/s", "decode tok/s", "of mem/disk ceiling", "of kernel ceiling"], rows);
}

/** Where a model's tokenizer is: the folder given, the checkpoint folder, or the artifacts folder. */
export function resolveTokenizerDir(candidates: (string | undefined)[]): string {
  for (const d of candidates) if (d && (existsSync(join(d, "tokenizer.json")) || existsSync(join(d, "tokenizer_config.json")))) return d;
  throw new UserError(
    `no tokenizer found (looked in: ${candidates.filter(Boolean).join(", ") || "nothing"})`,
    "pass --tokenizer DIR (a folder with tokenizer.json and tokenizer_config.json)",
  );
}

/** The model a server benchmark runs: --artifacts and --tokenizer (both default to the configured model's). */
export const serverModelArgs = {
  artifacts: { type: "string", description: "Artifacts folder (default: the model's, set up first when missing)", valueHint: "DIR" },
  tokenizer: { type: "string", description: "Folder with tokenizer.json + tokenizer_config.json (default: the checkpoint's)", valueHint: "DIR" },
} as const satisfies ArgsDef;

const command = defineCommand({
  meta: { name: "e2e", description: "Through the real server: time to first token, prefill and decode tok/s" },
  args: {
    ...globalArgs,
    ...jsonArgs,
    ...modelArgs,
    ...yesArgs,
    ...serverModelArgs,
    runs: { type: "string", description: "Measured runs per case (default 3)", valueHint: "N" },
    warmup: { type: "string", description: "Warm-up runs per prompt (default 1)", valueHint: "N" },
    decodeTokens: { type: "string", description: "Tokens generated per request (default 32)", valueHint: "N" },
    longWords: { type: "string", description: "Words in the long prompt (default 400)", valueHint: "N" },
    ttftTokens: { type: "string", description: "Also time the first token of a prompt of about N tokens (default none; make bench: 8192)", valueHint: "N" },
    cold: { type: "boolean", description: "Also measure with a cold page cache (default on; --no-cold to skip)" },
    history: { type: "boolean", description: "Append the figures to the results history (default on; --no-history to skip)" },
    remeasure: { type: "boolean", description: "Measure memory and disk bandwidth again instead of using the cached figures" },
  },
  async run({ args }) {
    const config = await loadFlashchatConfig({ configFile: args.config, overrides: { MODEL_REPO: args.model }, flagNames: { MODEL_REPO: "--model" } });
    // a model named by --model / MODEL_REPO is set up first when something is missing, as chat and serve do
    const target = args.artifacts ? undefined : await (await import("../setup/index.ts")).ensureReady(config, { yes: args.yes });
    const artifactsDir = args.artifacts ? resolve(args.artifacts) : target!.artifactsDir;
    const tokenizerDir = resolveTokenizerDir([args.tokenizer ? resolve(args.tokenizer) : undefined, target?.checkpointDir || config.modelPath || undefined, artifactsDir]);
    const result = await runE2eTarget(config, {
      artifactsDir,
      expertsDir: target?.expertsDir,
      tokenizerDir,
      model: target ? target.id : basename(artifactsDir),
      activeExperts: target?.activeExperts,
      runs: parseIntFlag(args.runs, "--runs", 2) ?? 3,
      warmup: parseIntFlag(args.warmup, "--warmup", 0) ?? 1,
      decodeTokens: parseIntFlag(args.decodeTokens, "--decode-tokens", 2) ?? 32,
      longWords: parseIntFlag(args.longWords, "--long-words", 1) ?? 400,
      ttftTokens: parseIntFlag(args.ttftTokens, "--ttft-tokens", 1) ?? 0,
      cold: args.cold !== false,
      history: args.history !== false,
      remeasure: Boolean(args.remeasure),
    });
    if (args.json) console.log(JSON.stringify(result, null, 2));
    else console.log(result.table);
  },
});

export interface E2eTargetOptions {
  artifactsDir: string;
  expertsDir?: string;
  tokenizerDir: string;
  /** model name in the history */
  model: string;
  /** experts per token (default ACTIVE_EXPERTS, else the model's own) */
  activeExperts?: number | null;
  runs: number;
  warmup: number;
  decodeTokens: number;
  shortWords?: number;
  longWords: number;
  cold: boolean;
  history: boolean;
  remeasure?: boolean;
  /** how to measure the machine when its figures are not cached (tests use small probes) */
  machine?: LoadProfileOptions;
  /** single-core kernel GB/s for the kernel ceiling; undefined = measure it (engine `bench kernels`), null = leave it out */
  kernelGBsPerCore?: number | null;
  engineBinary?: string;
  /** also the TTFT of a prompt of about this many tokens (0 = none) */
  ttftTokens?: number;
  ttftRuns?: number;
}

/** The e2e target: start the server, run the cases, compute ceilings, append to the history; returns figures + table. */
export async function runE2eTarget(config: ResolvedConfig, o: E2eTargetOptions) {
  if (!existsSync(join(o.artifactsDir, "model_weights.json"))) {
    throw new UserError(`no model artifacts in ${o.artifactsDir}`, "pass --artifacts DIR, or run: flashchat setup");
  }
  const activeExperts = o.activeExperts ?? config.activeExperts;
  const bytes: TokenBytes = loadTokenBytes(o.artifactsDir, { expertsDir: o.expertsDir, k: activeExperts });
  const busy = checkMachineLoad();
  if (busy) logger.warn(busy);
  const profile = await loadMachineProfile(config, { ...o.machine, remeasure: o.remeasure });
  const server = await startBenchServer({
    artifactsDir: o.artifactsDir,
    expertsDir: o.expertsDir,
    tokenizerDir: o.tokenizerDir,
    threads: config.threads,
    activeExperts,
    context: Math.max(2048, 4 * (o.longWords + o.decodeTokens), Math.ceil((o.ttftTokens ?? 0) * 1.25) + 64),
    engineBinary: o.engineBinary,
    logFile: join(config.paths.dataDir, "bench", "e2e-server.log"),
  });
  // an engine that mapped and loaded the experts up front (they fit in memory) keeps them through an eviction:
  // its "cold" runs would be warm ones, so there are none
  const holdsExperts = server.ready.expert_io === "populate";
  let result: E2eResult;
  try {
    result = await runE2e(server.url, {
      shortWords: o.shortWords ?? 12,
      longWords: o.longWords,
      decodeTokens: o.decodeTokens,
      warmup: o.warmup,
      runs: o.runs,
      cold: o.cold && !holdsExperts,
      evict: () => evictFiles([...listFiles(o.artifactsDir), ...(o.expertsDir && !o.expertsDir.startsWith(o.artifactsDir) ? listFiles(o.expertsDir) : [])], o.engineBinary),
      ttftTokens: o.ttftTokens,
      ttftRuns: o.ttftRuns,
      onCase: (label) => logger.info(`e2e: ${label}`),
    });
    if (o.cold && holdsExperts) {
      result.coldNote = "the engine loaded the experts into memory (expert_io populate: they fit in half the available memory), so evicting the files cannot make them cold";
    }
  } finally {
    await server.stop();
  }
  const ceilings = resolveCeilings(bytes, {
    memoryGBs: readBandwidthFor(profile.memory, server.ready.threads),
    diskGBs: profile.disk.coldGBs?.median ?? null,
    kernelGBsPerCore: o.kernelGBsPerCore === undefined ? await measureKernelGBsPerCore(bytes, o.engineBinary) : o.kernelGBsPerCore,
    threads: server.ready.threads,
  });
  if (o.cold && !result.cases.some((c) => c.cache === "cold")) logger.warn(`e2e: no cold-cache runs: ${result.coldNote}`);
  const records = e2eRecords(
    result,
    { date: new Date().toISOString(), commit: await loadGitCommit(), machine: loadMachineInfo(), model: o.model, quantization: `${bytes.expertBits}bit` },
    ceilings,
  );
  if (o.history) appendHistory(historyPath(config), records);
  return { ...result, busy, ceilings, tokenBytes: bytes, engine: { threads: server.ready.threads, backend: server.ready.backend }, records, table: renderE2eTable(result, ceilings) };
}

/**
 * Effective single-core quantized matrix-vector throughput over a token's bytes, GB/s: the dense bytes at the dense
 * bit width and the expert bytes at the experts', each at what `flashchat-engine bench kernels` measures for it
 * (a matrix larger than the caches, the best kernel level this CPU has). Null when a width was not measured.
 */
export async function measureKernelGBsPerCore(b: TokenBytes, binary?: string): Promise<number | null> {
  const out = await runEngineBench("kernels", { json: true, binary }, true);
  const r = JSON.parse(out.trim().split("\n").at(-1) ?? "{}") as { results?: { bits: number; memory_gbps: number }[] };
  const best = (bits: number) => Math.max(0, ...(r.results ?? []).filter((k) => k.bits === bits).map((k) => k.memory_gbps));
  const dense = best(b.denseBits ?? b.expertBits);
  const experts = best(b.expertBits);
  if (!dense || !experts) return null;
  return b.totalBytes / (b.denseBytes / dense + b.expertBytesUsed / experts);
}

export default command;
