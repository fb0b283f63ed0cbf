// Test helper: HTTP/1.x over a raw TCP socket (node:net), for the bytes fetch cannot send (no Host, a bad
// request line, pipelining, a huge chunked body), and a parser for the responses that come back.
import net from "node:net";

export interface RawResult {
  /** Everything the server sent. */
  text: string;
  /** The server closed the connection (rather than our socket timeout ending the wait). */
  closed: boolean;
}

/**
 * Send `bytes` (a string: one byte per character) on a new connection and collect the answer until the server closes it or nothing has
 * arrived for `idleMs` (then closed is false). `until` ends the wait early once the text satisfies it.
 */
export function sendRaw(port: number, bytes: string | Uint8Array, opts: { idleMs?: number; until?: (text: string) => boolean } = {}): Promise<RawResult> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    let text = "";
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      s.destroy();
      resolve({ text, closed });
    };
    s.on("data", (d) => {
      text += d.toString("latin1");
      if (opts.until?.(text)) finish(false);
    });
    s.on("close", () => finish(true));
    s.on("error", () => finish(true));
    s.setTimeout(opts.idleMs ?? 20_000, () => finish(false));
    s.write(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes); // one char, one byte
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parse back-to-back HTTP/1.1 responses (Content-Length or chunked bodies); a cut-off last one is left out. */
export function parseResponses(text: string): { responses: RawResponse[]; rest: string } {
  const responses: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const headEnd = text.indexOf("\r\n\r\n", at);
    if (headEnd < 0) break;
    const [statusLine = "", ...lines] = text.slice(at, headEnd).split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m) break;
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(":");
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let p = headEnd + 4;
    let body = "";
    if (headers["transfer-encoding"]?.toLowerCase() === "chunked") {
      let complete = false;
      for (;;) {
        const lineEnd = text.indexOf("\r\n", p);
        if (lineEnd < 0) break;
        const size = Number.parseInt(text.slice(p, lineEnd), 16);
        if (Number.isNaN(size)) break;
        if (text.length < lineEnd + 2 + size + 2) break;
        body += text.slice(lineEnd + 2, lineEnd + 2 + size);
        p = lineEnd + 2 + size + 2;
        if (size === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) break;
    } else {
      const n = Number(headers["content-length"] ?? "0");
      if (text.length < p + n) break;
      body = text.slice(p, p + n);
      p += n;
    }
    responses.push({ status: Number(m[1]), headers, body });
    at = p;
  }
  return { responses, rest: text.slice(at) };
}
