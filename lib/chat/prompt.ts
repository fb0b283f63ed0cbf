// One reply to one prompt: the reply on stdout (streamed, or one JSON object with --json), everything else
// on stderr. Uses a healthy running server; otherwise runs the engine behind a private in-process server
// on a loopback port for this one reply, and stops it afterwards.
import { requestSampling } from "../model/target.ts";
import type { ResolvedConfig } from "../config/schema.ts";
import { Interrupted, UserError } from "../errors.ts";
import { type ChatMessageIn, type Client, createClient, ServerApiError, ServerGoneError, type Usage } from "../client/api.ts";
import { checkLoadedModel, ensureServer, loadServerStatus, type PrivateServer } from "../client/local.ts";
import { resolveStats } from "./chat.ts";
import { elapsedMs, logStep, timeStep } from "../log.ts";
import { resolveColor } from "../term.ts";
import { createRandomSeed } from "../seed.ts";
import { ANSI, MarkdownRenderer } from "./render.ts";
import type { ReplyStats } from "./sessions.ts";

export interface PromptOptions {
  text: string;
  /** Most tokens to generate (default MAX_TOKENS, else the server's model default). */
  maxTokens?: number;
  /** false: ask the model not to think. */
  think?: boolean;
  system?: string;
  json?: boolean;
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
  env?: Record<string, string | undefined>;
  /** Bearer token for a server that requires one (FLASHCHAT_API_KEY). */
  apiKey?: string;
  /** Starts a private server for this reply when none is running (lib/client/local.ts startPrivateServer). */
  startLocal?: (config: ResolvedConfig) => Promise<PrivateServer>;
  /** Set the model up before a server is restarted with it (the running one had another model loaded). */
  prepare?: () => Promise<unknown>;
  /** --config FILE, passed on to a server restarted with the asked model. */
  configFile?: string;
}

export interface PromptResult {
  model?: string;
  content: string;
  reasoning: string;
  finish_reason: string | null;
  usage?: Usage;
  stats: ReplyStats;
  /** "server" (a running one) or "local" (started for this reply). */
  via: "server" | "local";
  /** the sampling seed sent: SEED / --seed, else a new random one (`--seed N` gives the same reply again) */
  seed: number;
}

/** Read the prompt argument: `-` means stdin. An empty prompt is a usage error. */
export async function resolvePromptText(
  arg: string | undefined,
  readStdin: () => Promise<string> = () => Bun.stdin.text(),
  stdinIsTTY = Boolean(process.stdin.isTTY),
): Promise<string> {
  // no prompt and piped input (`echo x | flashchat prompt`): the prompt is stdin, as with -
  const fromStdin = arg === "-" || (arg === undefined && !stdinIsTTY);
  const text = fromStdin ? await readStdin() : (arg ?? "");
  if (!text.trim()) throw new UserError("no prompt given", 'usage: flashchat prompt "your question" (or pipe it in: echo "your question" | flashchat prompt)', 2);
  return fromStdin ? text.replace(/\n$/, "") : text;
}

export async function runPrompt(config: ResolvedConfig, opts: PromptOptions): Promise<PromptResult> {
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const env = opts.env ?? process.env;
  const checked = elapsedMs();
  const status = await loadServerStatus(config);
  logStep(`server: ${status.healthy ? `using the one at ${status.baseUrl}` : status.running ? `the one at ${status.baseUrl} is loading` : `none at ${status.baseUrl}`}`, checked);
  let client: Client = createClient(status.baseUrl, { apiKey: opts.apiKey });
  let model = status.model;
  let via: PromptResult["via"] = "server";
  let stopLocal: (() => Promise<void>) | undefined;
  const say = (l: string) => stderr.write(`${l}\n`);
  if (status.running && (await checkLoadedModel(config, { command: "prompt", say })) === "restart") {
    // the user agreed to restart the server with the model asked for: start it in the background, as chat does
    const running = await ensureServer(config, { apiKey: opts.apiKey, say, command: "prompt", model: config.modelRepo, configFile: opts.configFile, prepare: opts.prepare });
    client = running.client;
    model = running.model;
  } else if (status.running && !status.healthy) {
    // a server that is still loading: wait for it (it fails with a clear message if it never gets ready)
    const running = await ensureServer(config, { autoStart: false, apiKey: opts.apiKey, say: (l) => stderr.write(`${l}\n`) });
    client = running.client;
    model = running.model;
  } else if (!status.healthy) {
    if (!opts.startLocal) throw new UserError("no server is running", "start one with: flashchat serve");
    const local = await opts.startLocal(config);
    client = local.client;
    model = local.model;
    stopLocal = local.stop;
    via = "local";
  }

  const messages: ChatMessageIn[] = [];
  if (opts.system) messages.push({ role: "system", content: opts.system });
  messages.push({ role: "user", content: opts.text });

  const seed = config.seed ?? createRandomSeed();
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.on("SIGINT", onSigint);
  const color = resolveColor(config.colorOutput, stdout.isTTY, env);
  const renderer = opts.json ? undefined : new MarkdownRenderer({ color, write: (s) => stdout.write(s), width: stdout.isTTY ? stdout.columns || 80 : undefined });
  const thinking = !opts.json && config.showThinking;
  const thinkColor = resolveColor(config.colorOutput, stderr.isTTY, env);
  let content = "";
  let reasoning = "";
  let nChunks = 0;
  let usage: Usage | undefined;
  let finishReason: string | null = null;
  const startMs = performance.now();
  let firstMs: number | undefined;
  let reasoningOpen = false;
  try {
    for await (const ev of client.chat({
      model,
      messages,
      maxTokens: opts.maxTokens ?? config.maxTokens,
      ...requestSampling(config),
      seed,
      think: opts.think === false ? false : undefined,
      signal: controller.signal,
    })) {
      if (ev.type === "done") {
        usage = ev.usage;
        finishReason = ev.finishReason;
        continue;
      }
      if (firstMs === undefined) {
        firstMs = performance.now();
        logStep("first token (TTFT)", startMs);
      }
      nChunks++;
      if (ev.type === "reasoning") {
        reasoning += ev.text;
        if (thinking) {
          if (!reasoningOpen && thinkColor) stderr.write(ANSI.dim);
          reasoningOpen = true;
          stderr.write(ev.text);
        }
      } else {
        if (reasoningOpen) {
          stderr.write(`${thinkColor ? ANSI.reset : ""}\n`);
          reasoningOpen = false;
        }
        content += ev.text;
        renderer?.write(ev.text);
      }
    }
  } catch (e) {
    // Ctrl-C: what arrived stays on stdout; exit 130 with no message
    if (controller.signal.aborted) throw new Interrupted();
    if (e instanceof ServerGoneError) throw new UserError(e.message, via === "local" ? "see the engine messages above" : `see the server log: ${config.serverLogPath}`);
    if (e instanceof ServerApiError) throw e;
    throw e;
  } finally {
    process.off("SIGINT", onSigint);
    if (reasoningOpen) stderr.write(`${thinkColor ? ANSI.reset : ""}\n`);
    renderer?.end();
    logStep(`reply: done${usage ? ` (${usage.completion_tokens} tokens)` : ""}`, startMs);
    if (stopLocal) await timeStep("private server: stopped", stopLocal);
  }
  const stats = resolveStats({ startMs, firstMs, endMs: performance.now(), nChunks, usage });
  const result: PromptResult = { model, content, reasoning, finish_reason: finishReason, usage, stats, via, seed };
  if (opts.json) stdout.write(`${JSON.stringify(result)}\n`);
  return result;
}
