// Addresses of our server: the URL a client uses for a bind address, and the one bind-safety rule
// (beyond loopback only with an API key, or when the user insists with --insecure).
import { UserError } from "./errors.ts";

/** A loopback address: reachable from this machine only. */
export const isLoopback = (host: string) => host === "127.0.0.1" || host === "::1" || host === "localhost" || host.startsWith("127.");

/**
 * The URL a client on this machine uses for a server bound to `host`:`port`. A wildcard bind is reached through
 * the loopback address of its family (`0.0.0.0` or "" -> 127.0.0.1, `::` -> [::1]); IPv6 literals get brackets.
 */
export function serverUrl(host: string, port: number): string {
  const h = host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `http://${h.includes(":") ? `[${h}]` : h}:${port}`;
}

/** A bind beyond loopback without an API key: a user mistake (exit 1, with what to do). */
export class ApiBindError extends UserError {
  override name = "ApiBindError";
  constructor(readonly host: string) {
    super(
      `binding ${host} exposes the server beyond this machine; set FLASHCHAT_API_KEY or pass --insecure`,
      "e.g. FLASHCHAT_API_KEY=$(openssl rand -hex 16) flashchat serve --host 0.0.0.0",
    );
  }
}

/** Refuse to expose the server without a key, unless the user insisted (--insecure). */
export function checkBindSafety(host: string, apiKey: string | undefined, insecure: boolean): void {
  if (isLoopback(host) || apiKey || insecure) return;
  throw new ApiBindError(host);
}
