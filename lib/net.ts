// The URL a client on this machine uses for our server's bind address. (Which hosts are loopback, and the
// bind-safety rule built on that, live with the server: lib/server/origin.ts.)

/**
 * The URL a client on this machine uses for a server bound to `host`:`port`. A wildcard bind is reached through
 * the loopback address of its family (`0.0.0.0` or "" -> 127.0.0.1, `::` -> [::1]); IPv6 literals get brackets.
 */
export function serverUrl(host: string, port: number): string {
  const h = host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `http://${h.includes(":") ? `[${h}]` : h}:${port}`;
}
