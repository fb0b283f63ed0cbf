// Which hosts mean this machine: loopback names and address literals, parsed (never prefix-matched), and the
// rules built on them — the bind needing an API key, and the Origin / Host checks of a server without one.
//
// Loopback is exactly: the name `localhost` (any case), an IPv4 dotted quad in 127.0.0.0/8 (four decimal
// parts 0-255, no leading zeros), and the IPv6 address ::1 (any spelling, with or without brackets).
// `*.localhost` names are not loopback here: only some resolvers special-case them, others ask DNS.
import { ApiError } from "./errors.ts";

/** Four decimal parts 0-255 without leading zeros ("0127.0.0.1" means 87.0.0.1 to inet_aton: refused). */
export function parseIpv4(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

/** Eight 16-bit groups of an IPv6 literal (brackets, zone ids not allowed), "::" and a trailing dotted quad expanded. */
export function parseIpv6(text: string): number[] | undefined {
  if (!/^[0-9a-f:.]+$/i.test(text) || text.split("::").length > 2) return undefined;
  const parseGroups = (s: string, allowIpv4: boolean): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    const items = s.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (allowIpv4 && i === items.length - 1 && item.includes(".")) {
        const v4 = parseIpv4(item);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-f]{1,4}$/i.test(item)) out.push(Number.parseInt(item, 16));
      else return undefined;
    }
    return out;
  };
  const [head, tail] = text.split("::") as [string, string | undefined];
  if (tail === undefined) {
    const groups = parseGroups(head, true);
    return groups && groups.length === 8 ? groups : undefined;
  }
  const a = parseGroups(head, false);
  const b = parseGroups(tail, true);
  if (!a || !b || a.length + b.length > 7) return undefined;
  return [...a, ...new Array<number>(8 - a.length - b.length).fill(0), ...b];
}

const stripBrackets = (host: string) => (host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host);

/** True when `host` (a name or address literal, no port) always means this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = stripBrackets(host.trim().toLowerCase());
  if (h.includes(":")) {
    const g = parseIpv6(h);
    return !!g && g.every((x, i) => x === (i === 7 ? 1 : 0));
  }
  const v4 = parseIpv4(h);
  if (v4) return v4[0] === 127;
  return h === "localhost";
}

/** True for an IPv4 or IPv6 address literal (with or without brackets): a name DNS rebinding cannot move. */
export function isIpLiteral(host: string): boolean {
  const h = stripBrackets(host.trim());
  return h.includes(":") ? parseIpv6(h) !== undefined : parseIpv4(h) !== undefined;
}

const isWildcard = (host: string) => {
  const h = stripBrackets(host.trim());
  if (h === "" || h === "0.0.0.0") return true;
  const g = h.includes(":") ? parseIpv6(h) : undefined;
  return !!g && g.every((x) => x === 0);
};

/** The host part of a Host header value (`name`, `name:port`, `[v6]`, `[v6]:port`); undefined when malformed. */
export function parseHostHeader(value: string): string | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::([0-9]{1,5}))?$/.exec(value.trim());
  if (!m || (m[2] !== undefined && Number(m[2]) > 65535)) return undefined;
  const host = m[1]!;
  if (host.startsWith("[") && !parseIpv6(host.slice(1, -1))) return undefined;
  return host;
}

/** True when an Origin header names a page served from this machine (http or https on a loopback host). */
export function isLoopbackOrigin(origin: string): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // "null" (sandboxed frames, file:// pages) and anything unparsable
  }
  return (url.protocol === "http:" || url.protocol === "https:") && isLoopbackHost(url.hostname);
}

/**
 * True when a request's Host header is one a server without an API key answers: absent (HTTP/1.0) or empty,
 * a loopback name or address, the address the server is bound to, or — bound to every interface
 * (0.0.0.0, ::) — any IP address literal. A DNS name that is none of these is what a DNS-rebinding page sends.
 */
export function isAllowedHost(hostHeader: string | null, boundHost: string): boolean {
  if (hostHeader === null || hostHeader.trim() === "") return true;
  const host = parseHostHeader(hostHeader);
  if (host === undefined) return false;
  if (isLoopbackHost(host)) return true;
  if (stripBrackets(host).toLowerCase() === stripBrackets(boundHost.trim()).toLowerCase()) return true;
  return isWildcard(boundHost) && isIpLiteral(host);
}

/** Refuse (403, OpenAI-shaped) what a web page or a rebinding DNS name could send to a server without an API key. */
export function checkRequestSource(headers: Headers, opts: { apiKey?: string; boundHost: string }): void {
  if (opts.apiKey) return; // the key is the check: a page cannot know it
  const host = headers.get("host");
  if (!isAllowedHost(host, opts.boundHost))
    throw new ApiError(403, `requests for host ${JSON.stringify(host)} are refused: without FLASHCHAT_API_KEY this server answers only localhost, loopback addresses and the address it is bound to`, "invalid_request_error", null, "host_not_allowed");
  // A web page the user visits can send requests to a loopback server (no-cors POSTs go through even if the
  // page cannot read the reply): without an API key, only pages served from this machine may call us.
  const origin = headers.get("origin");
  if (origin !== null && !isLoopbackOrigin(origin))
    throw new ApiError(403, `requests from web pages at ${origin} are refused; set FLASHCHAT_API_KEY to allow other origins`, "invalid_request_error", null, "origin_not_allowed");
}

export class ApiBindError extends Error {
  constructor(readonly host: string) {
    super(`binding ${host} exposes the server beyond this machine; set FLASHCHAT_API_KEY or pass --insecure`);
  }
}

/** Refuse to expose the server without a key, unless the user insisted (--insecure). */
export function checkBindSafety(host: string, apiKey: string | undefined, insecure: boolean): void {
  if (isLoopbackHost(host) || apiKey || insecure) return;
  throw new ApiBindError(host);
}
