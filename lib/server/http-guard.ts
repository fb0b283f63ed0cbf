// The HTTP edges of a request: its path (also without a Host header), percent-decoding that cannot throw,
// and the body read as a byte stream that stops with a 413 as soon as it passes the limit (chunked too).
import { ApiError, badRequest } from "./errors.ts";

/**
 * The path and query of a request. Bun gives `req.url` absolute when the request had a Host header and
 * as the bare request target ("/x") when it had none (HTTP/1.0); an odd Host ("a b") can make the absolute
 * form unparsable, so the authority is cut off by hand. Undefined for a target that is not a path
 * (CONNECT's "host:443", "*").
 */
export function resolveRequestUrl(rawUrl: string): URL | undefined {
  let target = rawUrl;
  const authority = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(target);
  if (authority) {
    target = target.slice(authority[0].length);
    if (!target.startsWith("/")) target = `/${target}`;
  }
  if (!target.startsWith("/")) return undefined;
  return new URL(`http://localhost${target}`);
}

/** decodeURIComponent that answers undefined for malformed escapes ("%", "%zz", a cut UTF-8 sequence). */
export function decodePathPart(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

export const tooLarge = (message: string) => new ApiError(413, message, "invalid_request_error", null, "request_too_large");

/**
 * Read a request body up to `maxBytes` bytes (not characters) and return it as text. A Content-Length over
 * the limit is refused before reading; a body without one (chunked) is counted as it streams and refused the
 * moment it passes the limit, without reading the rest. A body that breaks off mid-way is a 400.
 */
export async function readBodyText(req: Request, maxBytes: number): Promise<string> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) throw tooLarge(`request body is ${declared} bytes; the limit is ${maxBytes}`);
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let nBytes = 0;
  for (;;) {
    let step: Awaited<ReturnType<typeof reader.read>>;
    try {
      step = await reader.read();
    } catch (e) {
      throw badRequest(`could not read the request body: ${(e as Error).message}`, null, "invalid_body");
    }
    if (step.done) break;
    nBytes += step.value.byteLength;
    if (nBytes > maxBytes) {
      void reader.cancel().catch(() => {}); // the stream may already be closed; nothing else to do with it
      throw tooLarge(`request body is over the ${maxBytes}-byte limit`);
    }
    chunks.push(step.value);
  }
  const bytes = new Uint8Array(nBytes);
  let off = 0;
  for (const c of chunks) {
    bytes.set(c, off);
    off += c.byteLength;
  }
  return new TextDecoder().decode(bytes);
}
