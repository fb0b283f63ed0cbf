// The HTTP client of our server (the shape of Ollama's api/client.go): one Client per base URL with health,
// the loaded model and streamed chat completions. No processes, no config: lib/client/local.ts finds, starts
// and stops the local server.
import { UserError } from "../errors.ts";

export interface ChatMessageIn {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

export type ChatEvent =
  | { type: "reasoning"; text: string }
  | { type: "content"; text: string }
  | { type: "done"; finishReason: string | null; usage?: Usage };

export interface ChatRequest {
  baseUrl: string;
  model?: string;
  /** The whole conversation, every time. */
  messages: ChatMessageIn[];
  /** null or absent: the server's default (MAX_TOKENS, else the model's own). */
  maxTokens?: number | null;
  temperature?: number;
  topP?: number;
  /** Sampling seed; absent: the server picks a random one (a different reply each time). */
  seed?: number;
  /** false: ask the model not to think (chat template's enable_thinking). */
  think?: boolean;
  signal?: AbortSignal;
  apiKey?: string;
}

/** The server could not be reached, or went away before the reply was complete. */
export class ServerGoneError extends Error {
  override name = "ServerGoneError";
}

/** The server answered with an error (OpenAI-shaped JSON). */
export class ServerApiError extends UserError {
  override name = "ServerApiError";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(`the server refused the request (HTTP ${status}): ${message}`);
  }
}

export interface Health {
  status: string;
  model?: string;
  [k: string]: unknown;
}

/**
 * GET /health: the parsed body, or undefined when nothing answers (or not with JSON) within `timeoutMs`.
 * `stats`: with the engine's totals (engine.stats: tokens, expert reads, page-cache hits).
 */
export async function loadHealth(baseUrl: string, timeoutMs = 2000, opts: { stats?: boolean } = {}): Promise<Health | undefined> {
  try {
    const res = await fetch(`${baseUrl}/health${opts.stats ? "?stats=1" : ""}`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await res.json()) as Health;
    return body && typeof body.status === "string" ? body : undefined;
  } catch {
    return undefined;
  }
}

/** The first model id the server offers (GET /v1/models). */
export async function loadModelId(baseUrl: string, apiKey?: string): Promise<string | undefined> {
  try {
    const res = await fetch(`${baseUrl}/v1/models`, { headers: authHeaders(apiKey), signal: AbortSignal.timeout(5000) });
    if (!res.ok) return undefined;
    const body = (await res.json()) as { data?: { id: string }[] };
    return body.data?.[0]?.id;
  } catch {
    return undefined;
  }
}

/** The context length the server reports on /v1/models (`context_length`), or undefined. */
export async function loadContextLength(baseUrl: string, apiKey?: string): Promise<number | undefined> {
  try {
    const res = await fetch(`${baseUrl}/v1/models`, { headers: authHeaders(apiKey), signal: AbortSignal.timeout(5000) });
    if (!res.ok) return undefined;
    const n = ((await res.json()) as { data?: { context_length?: unknown }[] }).data?.[0]?.context_length;
    return typeof n === "number" && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

const authHeaders = (apiKey?: string): Record<string, string> => (apiKey ? { authorization: `Bearer ${apiKey}` } : {});

/** Stream one reply. Throws ServerGoneError when the connection fails or ends early, ServerApiError on an HTTP error. */
export async function* streamChatCompletion(req: ChatRequest): AsyncGenerator<ChatEvent> {
  const body: Record<string, unknown> = {
    messages: req.messages,
    stream: true,
    stream_options: { include_usage: true },
    // our server can inline or drop reasoning for clients that choke on it (SERVER_REASONING); we want it apart
    reasoning_format: "separate",
  };
  if (req.model) body.model = req.model;
  if (req.maxTokens != null) body.max_tokens = req.maxTokens;
  if (req.temperature !== undefined) body.temperature = req.temperature;
  if (req.topP !== undefined) body.top_p = req.topP;
  if (req.seed !== undefined) body.seed = req.seed;
  if (req.think !== undefined) body.chat_template_kwargs = { enable_thinking: req.think };

  let res: Response;
  try {
    res = await fetch(`${req.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream", ...authHeaders(req.apiKey) },
      body: JSON.stringify(body),
      signal: req.signal,
    });
  } catch (e) {
    if (req.signal?.aborted) throw e;
    throw new ServerGoneError(`cannot reach the server at ${req.baseUrl} (${(e as Error).message})`, { cause: e });
  }
  if (!res.ok || !res.body) {
    const text = await res.text().catch(() => "");
    let message = text.slice(0, 300);
    try {
      message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
    } catch {
      // not JSON: keep the text
    }
    if (res.status >= 500 && res.status !== 503) throw new ServerGoneError(`the server failed (HTTP ${res.status}): ${message}`);
    throw new ServerApiError(res.status, message);
  }

  const decoder = new TextDecoder();
  const reader = res.body.getReader();
  let buf = "";
  let finishReason: string | null = null;
  let usage: Usage | undefined;
  let sawDone = false;
  try {
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (req.signal?.aborted) throw e;
        throw new ServerGoneError(`the connection to the server broke mid-reply (${(e as Error).message})`, { cause: e });
      }
      if (chunk.done) break;
      buf += decoder.decode(chunk.value, { stream: true });
      let sep: number;
      while ((sep = buf.search(/\r?\n\r?\n/)) >= 0) {
        const frame = buf.slice(0, sep);
        buf = buf.slice(sep + (buf[sep] === "\r" ? 4 : 2));
        const data = frame
          .split(/\r?\n/)
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).replace(/^ /, ""))
          .join("\n");
        if (!data) continue;
        if (data === "[DONE]") {
          sawDone = true;
          continue;
        }
        let obj: {
          choices?: { delta?: { content?: string | null; reasoning_content?: string | null; reasoning?: string | null }; finish_reason?: string | null }[];
          usage?: Usage | null;
          error?: { message?: string };
        };
        try {
          obj = JSON.parse(data);
        } catch {
          continue;
        }
        if (obj.error) throw new ServerGoneError(`the server reported an error mid-reply: ${obj.error.message ?? "unknown"}`);
        if (obj.usage) usage = obj.usage;
        for (const choice of obj.choices ?? []) {
          const d = choice.delta ?? {};
          const reasoning = d.reasoning_content ?? d.reasoning;
          if (reasoning) yield { type: "reasoning", text: reasoning };
          if (d.content) yield { type: "content", text: d.content };
          if (choice.finish_reason) finishReason = choice.finish_reason;
        }
      }
    }
  } finally {
    reader.releaseLock?.();
  }
  if (!sawDone && !finishReason) throw new ServerGoneError("the server closed the connection before the reply was complete");
  yield { type: "done", finishReason, usage };
}

/** A client of one server. */
export interface Client {
  readonly url: string;
  /** GET /health (undefined: nothing answers). */
  health(timeoutMs?: number): Promise<Health | undefined>;
  /** The loaded model: /health's model (of `health` when already read), else the first of /v1/models. */
  loadedModel(health?: Health): Promise<string | undefined>;
  /** Stream one chat reply (see streamChatCompletion). */
  chat(req: Omit<ChatRequest, "baseUrl" | "apiKey">): AsyncGenerator<ChatEvent>;
}

export function createClient(url: string, opts: { apiKey?: string } = {}): Client {
  return {
    url,
    health: (timeoutMs) => loadHealth(url, timeoutMs),
    async loadedModel(read?: Health) {
      const health = read ?? (await loadHealth(url));
      return (typeof health?.model === "string" ? health.model : undefined) ?? (await loadModelId(url, opts.apiKey));
    },
    chat: (req) => streamChatCompletion({ ...req, baseUrl: url, apiKey: opts.apiKey }),
  };
}
