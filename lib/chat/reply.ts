// One streamed reply in a chat session, as `flashchat chat` and the TUI's chat both take it: the user's message
// saved once the server takes it, the reply journalled as it arrives, the end classified (done, stopped, server
// gone, refused) and saved with its stats. The caller draws the text (onText) and says what the outcome means.
import { type ChatRequest, ServerApiError, ServerGoneError, streamChatCompletion, type Usage } from "../client/api.ts";
import { type ReplyStats, resolveRequestMessages, type Session, type SessionMessage } from "./sessions.ts";

export type ReplyOutcome = "done" | "interrupted" | "server-gone" | "refused";

export interface ReplyResult {
  outcome: ReplyOutcome;
  /** What went wrong (server-gone, refused), as a sentence. */
  failure: string;
  content: string;
  reasoning: string;
  stats: ReplyStats;
  /** false: the server refused the request before anything arrived; the message and the reply were not saved. */
  saved: boolean;
}

/** Stats line after a reply: "42 tokens · 12.3 tok/s · first token 0.45 s". */
export function renderStats(s: ReplyStats): string {
  const parts = [`${s.completion_tokens ?? 0} tokens`];
  if (s.tok_per_s !== undefined) parts.push(`${s.tok_per_s.toFixed(1)} tok/s`);
  if (s.ttft_ms !== undefined) parts.push(`first token ${(s.ttft_ms / 1000).toFixed(2)} s`);
  if (s.cached_tokens) parts.push(`${s.cached_tokens} prompt tokens cached`);
  return parts.join(" · ");
}

/** Time and token counts -> stats for the session file and the stats line. */
export function resolveStats(t: { startMs: number; firstMs?: number; endMs: number; nChunks: number; usage?: Usage }): ReplyStats {
  const completion = t.usage?.completion_tokens ?? t.nChunks;
  const stats: ReplyStats = { completion_tokens: completion, total_ms: Math.round(t.endMs - t.startMs) };
  if (t.usage?.prompt_tokens !== undefined) stats.prompt_tokens = t.usage.prompt_tokens;
  const cached = t.usage?.prompt_tokens_details?.cached_tokens;
  if (cached) stats.cached_tokens = cached;
  if (t.firstMs !== undefined) {
    stats.ttft_ms = Math.round(t.firstMs - t.startMs);
    const decodeSec = (t.endMs - t.firstMs) / 1000;
    if (decodeSec > 0 && completion > 1) stats.tok_per_s = Math.round(((completion - 1) / decodeSec) * 10) / 10;
  }
  return stats;
}

/** How a stream that threw ended: stopped by us (the signal), the server gone, or refused; anything else is a bug. */
export function classifyStreamError(e: unknown, signal: AbortSignal | undefined): { outcome: Exclude<ReplyOutcome, "done">; failure: string } {
  if (signal?.aborted) return { outcome: "interrupted", failure: "" };
  if (e instanceof ServerGoneError) return { outcome: "server-gone", failure: e.message };
  if (e instanceof ServerApiError) return { outcome: "refused", failure: e.message };
  throw e;
}

/**
 * Stream the reply to the session's conversation plus `pending` (undefined: the conversation as it is) and save
 * both. The message is saved once the server takes it, or when the reply is stopped or cut off; one the server
 * refuses outright (longer than the context) never enters the session, so the next turns still fit.
 */
export async function streamSessionReply(opts: {
  session: Session;
  pending?: SessionMessage;
  /** Everything but the messages (the session's, plus `pending`). */
  request: Omit<ChatRequest, "messages">;
  onFirstToken?: () => void;
  onText: (kind: "reasoning" | "content", text: string) => void;
}): Promise<ReplyResult> {
  const { session, pending, request } = opts;
  let stored = false;
  const store = () => {
    if (pending && !stored) session.append(pending);
    stored = true;
  };
  const journal = session.startReply({ model: request.model });
  let content = "";
  let reasoning = "";
  let nChunks = 0;
  let usage: Usage | undefined;
  const startMs = performance.now();
  let firstMs: number | undefined;
  let outcome: ReplyOutcome = "done";
  let failure = "";
  try {
    for await (const ev of streamChatCompletion({ ...request, messages: resolveRequestMessages(pending ? [...session.messages, pending] : session.messages) })) {
      store();
      if (ev.type === "done") {
        usage = ev.usage;
        continue;
      }
      if (firstMs === undefined) {
        firstMs = performance.now();
        opts.onFirstToken?.();
      }
      nChunks++;
      if (ev.type === "reasoning") reasoning += ev.text;
      else content += ev.text;
      journal.add(ev.type, ev.text);
      opts.onText(ev.type, ev.text);
    }
  } catch (e) {
    ({ outcome, failure } = classifyStreamError(e, request.signal));
  }
  const stats = resolveStats({ startMs, firstMs, endMs: performance.now(), nChunks, usage });
  if (outcome === "refused" && !content && !reasoning) {
    journal.cancel();
    return { outcome, failure, content, reasoning, stats, saved: false };
  }
  store(); // stopped or cut off before anything arrived: the message stays, as sent
  journal.finish({
    role: "assistant",
    content,
    ...(reasoning ? { reasoning } : {}),
    ...(request.model ? { model: request.model } : {}),
    stats,
    ...(outcome === "done" ? {} : { interrupted: true }),
  });
  return { outcome, failure, content, reasoning, stats, saved: true };
}
