// Server logs: server.log (one line per request, engine messages), http.log (raw traffic, opt-in),
// prompts.log (rendered prompts, opt-in). Files and their folder are private to the user (0600 / 0700).
import { appendFileSync, chmodSync, existsSync, mkdirSync } from "node:fs";
import { dirname } from "pathe";

export interface ServerLogOptions {
  /** server.log; undefined = no file */
  logFile?: string;
  /** http.log (SERVER_HTTP_LOG=1) */
  httpLogFile?: string;
  /** prompts.log (SERVER_DEBUG=1) */
  promptLogFile?: string;
  /** Also print each line here (the foreground server's terminal). */
  echo?: (line: string) => void;
}

export interface RequestLogLine {
  method: string;
  route: string;
  status: number;
  promptTokens?: number;
  cachedTokens?: number;
  completionTokens?: number;
  ttftMs?: number;
  tokPerSec?: number;
  totalMs: number;
  note?: string;
}

export interface ServerLogs {
  info(message: string): void;
  request(r: RequestLogLine): void;
  http(direction: "request" | "response", id: string, text: string): void;
  prompt(id: string, prompt: string): void;
  readonly httpEnabled: boolean;
}

function openPrivate(path: string | undefined): ((text: string) => void) | undefined {
  if (!path) return undefined;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  if (!existsSync(path)) appendFileSync(path, "", { mode: 0o600 });
  chmodSync(path, 0o600);
  return (text) => appendFileSync(path, text, { mode: 0o600 });
}

export function renderRequestLine(r: RequestLogLine, now = new Date()): string {
  const parts = [now.toISOString(), r.method, r.route, String(r.status)];
  if (r.promptTokens !== undefined) parts.push(`prompt=${r.promptTokens}`);
  if (r.cachedTokens !== undefined) parts.push(`cached=${r.cachedTokens}`);
  if (r.completionTokens !== undefined) parts.push(`completion=${r.completionTokens}`);
  if (r.ttftMs !== undefined) parts.push(`ttft=${Math.round(r.ttftMs)}ms`);
  if (r.tokPerSec !== undefined) parts.push(`${r.tokPerSec.toFixed(2)}tok/s`);
  parts.push(`${Math.round(r.totalMs)}ms`);
  if (r.note) parts.push(r.note.replace(/\s+/g, " "));
  return parts.join(" ");
}

export function createServerLogs(opts: ServerLogOptions): ServerLogs {
  const main = openPrivate(opts.logFile);
  const http = openPrivate(opts.httpLogFile);
  const prompts = openPrivate(opts.promptLogFile);
  const line = (text: string) => {
    main?.(`${text}\n`);
    opts.echo?.(text);
  };
  return {
    info: (message) => line(`${new Date().toISOString()} ${message}`),
    request: (r) => line(renderRequestLine(r)),
    http: (direction, id, text) => http?.(`--- ${new Date().toISOString()} ${id} ${direction}\n${text}${text.endsWith("\n") ? "" : "\n"}`),
    prompt: (id, prompt) => prompts?.(`--- ${new Date().toISOString()} ${id}\n${prompt}\n`),
    httpEnabled: !!http,
  };
}
