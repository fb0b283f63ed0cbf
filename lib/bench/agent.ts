// `benchmark agent`: an agent's two turns through the real server — turn 1 a long system prompt + tools + user message,
// turn 2 the same conversation resent with a tool call and its result — and the time to first token of each, at
// conversation sizes of 8k and 32k tokens. Turn 2 reuses turn 1's prefix (the prompt cache), so its TTFT as a ratio
// to turn 1's is what prefix reuse buys an agent.
//   bun scripts/benchmark.ts agent --model demo [--sizes 8192,32768] [--runs 1]
//   bun scripts/benchmark.ts agent --artifacts DIR --tokenizer DIR
import { existsSync } from "node:fs";
import { defineCommand } from "citty";
import { basename, join, resolve } from "pathe";
import { globalArgs, jsonArgs, modelArgs, parseIntFlag, yesArgs } from "../cli.ts";
import { loadFlashchatConfig } from "../config/index.ts";
import type { ResolvedConfig } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { logger } from "../log.ts";
import { loadChatTemplate } from "../server/chat-template.ts";
import { loadTokenizer } from "../server/tokenizer.ts";
import { postTimedStream, resolveTokenizerDir, serverModelArgs, startBenchServer } from "./e2e.ts";
import { type BenchRecord, appendHistory, historyPath } from "./history.ts";
import { loadGitCommit, loadMachineInfo } from "./machine.ts";
import { renderBenchTable } from "./report.ts";
import { type Summary, formatNumber, summarize } from "./stats.ts";

/** Conversation sizes of `make bench` (tokens of turn 1's prompt). */
export const AGENT_SIZES = [8192, 32768] as const;

const FILLER = (
  "you are a coding agent that reads the files of a project edits them with care runs the tests after each change " +
  "and reports what it did in short plain sentences without guessing paths or inventing results so check first then write"
).split(" ");

const TOOLS = ["read", "write", "edit", "bash", "grep", "glob"].map((name) => ({
  type: "function" as const,
  function: {
    name,
    description: `The ${name} tool of the agent.`,
    parameters: { type: "object", properties: { path: { type: "string", description: "a file or folder" }, text: { type: "string" } }, required: ["path"] },
  },
}));

/** About `nWords` words of filler text, `nonce` first so no two conversations share more than the template's start. */
function fillerText(nWords: number, nonce: number): string {
  const words = [`Session ${nonce}.`];
  for (let i = 0; i < nWords; i++) words.push(FILLER[(i * 5 + nonce) % FILLER.length]!);
  return words.join(" ");
}

export interface TurnTiming {
  promptTokens: number;
  cachedTokens: number;
  /** request sent -> first generated text or tool call, from the client's side */
  ttftMs: number;
}

/** One streamed chat completion with tools, timed to its first delta. */
async function timeTurn(url: string, messages: unknown[], maxTokens: number): Promise<TurnTiming & { text: string }> {
  const body = { messages, tools: TOOLS, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } };
  const { t0, tFirst, text, usage } = await postTimedStream(url, body);
  return { promptTokens: usage.prompt_tokens, cachedTokens: usage.prompt_tokens_details?.cached_tokens ?? 0, ttftMs: tFirst - t0, text };
}

/**
 * Turn 1 of about `nTokens` tokens (a system prompt of 3/4 of them, tools, a user message of the rest), then turn 2:
 * the same messages, the assistant's reply as a call of `read`, the tool's result (about 200 words), as an agent sends it.
 */
export async function runAgentTurns(url: string, o: { nWords: number; nonce: number }): Promise<{ turn1: TurnTiming; turn2: TurnTiming }> {
  const messages: unknown[] = firstTurn(o.nWords, o.nonce);
  const t1 = await timeTurn(url, messages, 4);
  messages.push({ role: "assistant", content: t1.text, tool_calls: [{ id: "call_1", type: "function", function: { name: "read", arguments: JSON.stringify({ path: "src/main.ts" }) } }] });
  messages.push({ role: "tool", tool_call_id: "call_1", content: fillerText(200, o.nonce + 2) });
  const t2 = await timeTurn(url, messages, 4);
  const strip = ({ text: _text, ...t }: TurnTiming & { text: string }) => t;
  return { turn1: strip(t1), turn2: strip(t2) };
}

function firstTurn(nWords: number, nonce: number): { role: string; content: string }[] {
  return [
    { role: "system", content: fillerText(Math.round(nWords * 0.75), nonce) },
    { role: "user", content: `Fix the failing test. The log:\n${fillerText(Math.round(nWords * 0.25), nonce + 1)}` },
  ];
}

export interface AgentCase {
  /** the asked size (tokens of turn 1) */
  size: number;
  turn1PromptTokens: number;
  turn2PromptTokens: number;
  turn2CachedTokens: Summary;
  /** per run: turn 1's prompt tokens that turn 2 did not reuse (each run's own prompts: their lengths differ by a few tokens) */
  turn1NotReused: Summary;
  turn1TtftMs: Summary;
  turn2TtftMs: Summary;
  /** turn 2's TTFT / turn 1's, per run */
  ratio: Summary;
}

export interface AgentTargetOptions {
  artifactsDir: string;
  expertsDir?: string;
  tokenizerDir: string;
  /** model name in the history */
  model: string;
  activeExperts?: number | null;
  sizes: readonly number[];
  runs: number;
  history: boolean;
  engineBinary?: string;
}

/** The filler words that make turn 1 `nTokens` tokens under this model's chat template and tokenizer (two tries, scaled). */
function sizeTurn(count: (nWords: number) => number, nTokens: number): number {
  const overhead = count(0);
  let nWords = Math.max(16, nTokens - overhead);
  for (let i = 0; i < 2; i++) nWords = Math.max(16, Math.round((nWords * (nTokens - overhead)) / Math.max(1, count(nWords) - overhead)));
  return nWords;
}

/** The agent target: start the server, run both turns at each size `runs` times, return the cases and the table. */
export async function runAgentTarget(config: ResolvedConfig, o: AgentTargetOptions) {
  if (!existsSync(join(o.artifactsDir, "model_weights.json"))) throw new UserError(`no model artifacts in ${o.artifactsDir}`, "pass --artifacts DIR, or run: flashchat setup");
  const tokenizer = await loadTokenizer(o.tokenizerDir);
  const template = loadChatTemplate(o.tokenizerDir);
  const count = (nWords: number) => tokenizer.encodeRendered(template.render(firstTurn(nWords, 1), { tools: TOOLS }), undefined).length;
  const server = await startBenchServer({
    artifactsDir: o.artifactsDir,
    expertsDir: o.expertsDir,
    tokenizerDir: o.tokenizerDir,
    threads: config.threads,
    activeExperts: o.activeExperts ?? config.activeExperts,
    // turn 2 adds a tool call and about 200 words of its result
    context: Math.max(...o.sizes) + 1024,
    engineBinary: o.engineBinary,
    logFile: join(config.paths.dataDir, "bench", "agent-server.log"),
  });
  const cases: AgentCase[] = [];
  let nonce = Date.now() % 100_000;
  try {
    for (const size of o.sizes) {
      const runs: { turn1: TurnTiming; turn2: TurnTiming }[] = [];
      const nWords = sizeTurn(count, size);
      for (let i = 0; i < o.runs; i++) {
        logger.info(`agent: ${size}-token conversation, run ${i + 1} of ${o.runs}`);
        runs.push(await runAgentTurns(server.url, { nWords, nonce: (nonce += 10) }));
      }
      cases.push({
        size,
        turn1PromptTokens: runs[0]!.turn1.promptTokens,
        turn2PromptTokens: runs[0]!.turn2.promptTokens,
        turn2CachedTokens: summarize(runs.map((r) => r.turn2.cachedTokens)),
        turn1NotReused: summarize(runs.map((r) => r.turn1.promptTokens - r.turn2.cachedTokens)),
        turn1TtftMs: summarize(runs.map((r) => r.turn1.ttftMs)),
        turn2TtftMs: summarize(runs.map((r) => r.turn2.ttftMs)),
        ratio: summarize(runs.map((r) => r.turn2.ttftMs / r.turn1.ttftMs)),
      });
    }
  } finally {
    await server.stop();
  }
  const base = { date: new Date().toISOString(), commit: await loadGitCommit(), machine: loadMachineInfo(), model: o.model, quantization: "4bit", target: "agent" };
  const records: BenchRecord[] = cases.flatMap((c) => [
    { ...base, figure: `turn1_ttft_ms:${c.size}`, unit: "ms", stats: c.turn1TtftMs },
    { ...base, figure: `turn2_ttft_ms:${c.size}`, unit: "ms", stats: c.turn2TtftMs },
    { ...base, figure: `turn2_over_turn1:${c.size}`, unit: "x", stats: c.ratio },
  ]);
  if (o.history) appendHistory(historyPath(config), records);
  return { cases, records, table: renderAgentTable(cases) };
}

/** The agent cases as a table: each turn's tokens and TTFT, the cached tokens of turn 2 and the ratio. */
export function renderAgentTable(cases: readonly AgentCase[]): string {
  const f = (s: Summary) => (s.n > 1 ? `${formatNumber(s.median)} (${formatNumber(s.min)}–${formatNumber(s.max)})` : formatNumber(s.median));
  return renderBenchTable(
    ["conversation", "turn 1 tokens", "turn 1 TTFT ms", "turn 2 tokens", "cached", "turn 2 TTFT ms", "turn 2 / turn 1"],
    cases.map((c) => [`${c.size / 1024}k`, String(c.turn1PromptTokens), f(c.turn1TtftMs), String(c.turn2PromptTokens), f(c.turn2CachedTokens), f(c.turn2TtftMs), f(c.ratio)]),
  );
}

/** "8192,32768" -> [8192, 32768]; a user mistake names the flag. */
export function parseSizes(v: string | undefined, flag = "--sizes"): number[] | undefined {
  if (v === undefined) return undefined;
  const sizes = v.split(",").map((s) => Number(s.trim()));
  if (!sizes.length || sizes.some((n) => !Number.isInteger(n) || n < 1024))
    throw new UserError(`${flag} must be a comma-separated list of token counts, each 1024 or more, not ${JSON.stringify(v)}`, undefined, 2);
  return sizes;
}

const command = defineCommand({
  meta: { name: "agent", description: "An agent's turns 1 and 2 through the real server: time to first token at 8k and 32k tokens" },
  args: {
    ...globalArgs,
    ...jsonArgs,
    ...modelArgs,
    ...yesArgs,
    ...serverModelArgs,
    sizes: { type: "string", description: `Conversation sizes in tokens (default ${AGENT_SIZES.join(",")})`, valueHint: "N,N" },
    runs: { type: "string", description: "Runs per size (default 1)", valueHint: "N" },
    history: { type: "boolean", description: "Append the figures to the results history (default on; --no-history to skip)" },
  },
  async run({ args }) {
    const config = await loadFlashchatConfig({ configFile: args.config, overrides: { MODEL_REPO: args.model }, flagNames: { MODEL_REPO: "--model" } });
    const sizes = parseSizes(args.sizes) ?? [...AGENT_SIZES];
    const target = args.artifacts ? undefined : await (await import("../setup/index.ts")).ensureReady(config, { yes: args.yes });
    const artifactsDir = args.artifacts ? resolve(args.artifacts) : target!.artifactsDir;
    const tokenizerDir = resolveTokenizerDir([args.tokenizer ? resolve(args.tokenizer) : undefined, target?.checkpointDir || config.modelPath || undefined, artifactsDir]);
    const r = await runAgentTarget(config, {
      artifactsDir,
      expertsDir: target?.expertsDir,
      tokenizerDir,
      model: target ? target.id : basename(artifactsDir),
      activeExperts: target?.activeExperts,
      sizes,
      runs: parseIntFlag(args.runs, "--runs", 1) ?? 1,
      history: args.history !== false,
    });
    if (args.json) console.log(JSON.stringify(r.cases, null, 2));
    else console.log(r.table);
  },
});

export default command;
