// Benchmark target `health`: /health latency (p50 / p99 / max) while N clients keep sending large prompts, against the
// same server idle, with prompts prepared in a worker and (the baseline, in the same run) on the event loop.
//   bun scripts/benchmark.ts health --model demo [--clients 4] [--prompt-kib 1024] [--seconds 10]
//   bun scripts/benchmark.ts health --artifacts DIR --tokenizer DIR
import { basename, resolve } from "pathe";
import { defineCommand } from "citty";
import { globalArgs, jsonArgs, modelArgs, parseIntFlag, yesArgs } from "../cli.ts";
import { loadFlashchatConfig } from "../config/index.ts";
import { logger } from "../log.ts";
import { resolveTokenizerDir, serverModelArgs, startBenchServer } from "./e2e.ts";
import { checkMachineLoad } from "./machine.ts";
import { renderBenchTable } from "./report.ts";
import { formatNumber } from "./stats.ts";

export interface HealthLatency {
  n: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface HealthCase {
  mode: "worker" | "event loop";
  idle: HealthLatency;
  loaded: HealthLatency;
  /** big requests answered during the loaded phase, by status and code */
  answers: Record<string, number>;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;

function latencyOf(samples: number[]): HealthLatency {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50Ms: quantile(s, 0.5), p99Ms: quantile(s, 0.99), maxMs: s.at(-1)! };
}

/** GET /health back to back (a short pause between) until `until` resolves; the latency of each answer. */
async function probeHealth(url: string, until: Promise<unknown>): Promise<number[]> {
  let done = false;
  void until.finally(() => {
    done = true;
  });
  const out: number[] = [];
  while (!done) {
    const t = performance.now();
    await (await fetch(`${url}/health`)).arrayBuffer();
    out.push(performance.now() - t);
    await Bun.sleep(10);
  }
  return out;
}

/** A prompt of about `bytes` bytes of ordinary words (a nonce first so no two share a prefix). */
export function createLargePrompt(bytes: number, nonce: number): string {
  const words = "the model reads each expert from the disk when a token needs it and keeps the dense weights in memory ";
  return `Run ${nonce}: ${words.repeat(Math.ceil(bytes / words.length))}`.slice(0, bytes);
}

export interface HealthBenchOptions {
  artifactsDir: string;
  expertsDir?: string;
  tokenizerDir: string;
  threads?: number | null;
  context: number;
  clients: number;
  promptBytes: number;
  seconds: number;
  idleSeconds: number;
  modes: HealthCase["mode"][];
}

export async function runHealthBench(o: HealthBenchOptions): Promise<HealthCase[]> {
  const cases: HealthCase[] = [];
  for (const mode of o.modes) {
    logger.info(`health: prompts prepared ${mode === "worker" ? "in a worker" : "on the event loop"}`);
    const server = await startBenchServer({
      artifactsDir: o.artifactsDir,
      expertsDir: o.expertsDir,
      tokenizerDir: o.tokenizerDir,
      threads: o.threads,
      context: o.context,
      promptWorkers: mode === "worker" ? 1 : 0,
    });
    try {
      const idle = await probeHealth(server.url, Bun.sleep(o.idleSeconds * 1000));
      const answers: Record<string, number> = {};
      const end = performance.now() + o.seconds * 1000;
      let nonce = 0;
      const client = async () => {
        while (performance.now() < end) {
          const r = await fetch(`${server.url}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ messages: [{ role: "user", content: createLargePrompt(o.promptBytes, nonce++) }], max_tokens: 1, temperature: 0 }),
          });
          const j = (await r.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
          const why = j.error?.code === "context_length_exceeded" ? (j.error.message?.includes("bytes of text") ? "refused by size" : "refused by tokens") : (j.error?.code ?? "ok");
          const key = `${r.status} ${why}`;
          answers[key] = (answers[key] ?? 0) + 1;
        }
      };
      const load = Promise.all(Array.from({ length: o.clients }, client));
      const loaded = await probeHealth(server.url, load);
      cases.push({ mode, idle: latencyOf(idle), loaded: latencyOf(loaded), answers });
    } finally {
      await server.stop();
    }
  }
  return cases;
}

export function renderHealthTable(cases: HealthCase[]): string {
  const ms = (x: number) => formatNumber(x);
  return renderBenchTable(
    ["prompts prepared", "idle p50 ms", "idle p99 ms", "loaded p50 ms", "loaded p99 ms", "loaded max ms", "p99 loaded / idle", "big requests"],
    cases.map((c) => [
      c.mode,
      ms(c.idle.p50Ms),
      ms(c.idle.p99Ms),
      ms(c.loaded.p50Ms),
      ms(c.loaded.p99Ms),
      ms(c.loaded.maxMs),
      formatNumber(c.loaded.p99Ms / c.idle.p99Ms),
      Object.entries(c.answers).map(([k, n]) => `${n}x ${k}`).join(", "),
    ]),
  );
}

const command = defineCommand({
  meta: { name: "health", description: "/health latency while clients send large prompts (worker vs event loop)" },
  args: {
    ...globalArgs,
    ...jsonArgs,
    ...modelArgs,
    ...yesArgs,
    ...serverModelArgs,
    clients: { type: "string", description: "Clients sending large prompts at once (default 4)", valueHint: "N" },
    promptKib: { type: "string", description: "Size of each prompt in KiB (default 1024)", valueHint: "N" },
    seconds: { type: "string", description: "Seconds of load per mode (default 10)", valueHint: "N" },
    context: { type: "string", description: "Engine context in tokens (default 65536: a 1 MiB prompt passes the byte check and is refused after tokenizing)", valueHint: "N" },
    baseline: { type: "boolean", description: "Also measure prompts prepared on the event loop (default on; --no-baseline to skip)" },
  },
  async run({ args }) {
    const config = await loadFlashchatConfig({ configFile: args.config, overrides: { MODEL_REPO: args.model }, flagNames: { MODEL_REPO: "--model" } });
    const target = args.artifacts ? undefined : await (await import("../setup/index.ts")).ensureReady(config, { yes: args.yes });
    const artifactsDir = args.artifacts ? resolve(args.artifacts) : target!.artifactsDir;
    const tokenizerDir = resolveTokenizerDir([args.tokenizer ? resolve(args.tokenizer) : undefined, target?.checkpointDir || config.modelPath || undefined, artifactsDir]);
    const busy = checkMachineLoad();
    if (busy) logger.warn(busy);
    const cases = await runHealthBench({
      artifactsDir,
      expertsDir: target?.expertsDir,
      tokenizerDir,
      threads: config.threads,
      context: (parseIntFlag(args.context, "--context", 16) ?? 65536),
      clients: (parseIntFlag(args.clients, "--clients", 1) ?? 4),
      promptBytes: (parseIntFlag(args.promptKib, "--prompt-kib", 1) ?? 1024) * 1024,
      seconds: (parseIntFlag(args.seconds, "--seconds", 1) ?? 10),
      idleSeconds: 2,
      modes: args.baseline === false ? ["worker"] : ["worker", "event loop"],
    });
    if (args.json) console.log(JSON.stringify({ model: target?.id ?? basename(artifactsDir), busy, cases }, null, 2));
    else console.log(renderHealthTable(cases));
  },
});

export default command;
