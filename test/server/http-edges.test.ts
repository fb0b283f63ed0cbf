// The HTTP edges through the real Bun.serve on 127.0.0.1:0, over raw sockets where fetch cannot make the bytes:
// Origin and Host checks, requests without Host, bad percent-encoding, the byte-exact body limit (chunked too),
// pipelining, garbage request lines and idle connections.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import net from "node:net";
import { join } from "pathe";
import type { RunningServer } from "../../lib/server/app.ts";
import { decodePathPart, resolveRequestUrl } from "../../lib/server/http-guard.ts";
import { createFakeEngineFactory } from "./_fake-engine.ts";
import { parseResponses, sendRaw } from "./_raw-http.ts";
import { createTempDir, startTestServer } from "./_server-fixture.ts";

setDefaultTimeout(60_000);

const LIMIT = 64 * 1024;
const tmp = createTempDir("flashchat-edges-");
const fake = createFakeEngineFactory({ tokenDelayMs: 2 });
let server: RunningServer;
let port: number;

beforeAll(async () => {
  server = await startTestServer(tmp.dir, { startEngine: fake.start, maxBodyBytes: LIMIT, idleTimeoutSeconds: 1 });
  port = server.port;
});
afterAll(async () => {
  await server.stop(1000);
  tmp[Symbol.dispose]();
});

const chatBody = JSON.stringify({ messages: [{ role: "user", content: "x" }], max_tokens: 1 });
const get = (path: string, headers = `Host: 127.0.0.1:${0}\r\n`) => `GET ${path} HTTP/1.1\r\n${headers}\r\n`;
const hostLine = () => `Host: 127.0.0.1:${port}\r\n`;

/** One request on its own connection; its (first) response. */
async function one(bytes: string) {
  const r = await sendRaw(port, bytes, { until: (t) => parseResponses(t).responses.length > 0 });
  const [res] = parseResponses(r.text).responses;
  if (!res) throw new Error(`no complete response; got ${JSON.stringify(r.text.slice(0, 300))}`);
  return res;
}
const errorOf = (body: string) => (JSON.parse(body) as { error: { type: string; code: string | null; message: string; param: null | string } }).error;

describe("Origin and Host without an API key", () => {
  test("an Origin that only starts like a loopback address is refused; real loopback origins pass", async () => {
    for (const origin of ["http://127.0.0.1.evil.example", "https://127.0.0.1.nip.io:8000", "http://localhost.evil.example", "null"]) {
      const r = await fetch(`${server.url}/v1/chat/completions`, { method: "POST", headers: { origin }, body: chatBody });
      expect([origin, r.status]).toEqual([origin, 403]);
      expect(((await r.json()) as any).error.code).toBe("origin_not_allowed");
    }
    for (const origin of ["http://localhost:3000", "http://127.0.0.5:8080", "http://[::1]:5173"]) {
      const r = await fetch(`${server.url}/v1/chat/completions`, { method: "POST", headers: { origin }, body: chatBody });
      expect([origin, r.status]).toEqual([origin, 200]);
    }
  });

  test("a Host that is not a loopback name or the bound address is refused (DNS rebinding), GET routes too", async () => {
    for (const host of ["evil.example", "127.0.0.1.nip.io:8000", `rebind.example:${0}`]) {
      for (const path of ["/v1/models", "/health", "/v1"]) {
        const res = await one(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        expect([host, path, res.status]).toEqual([host, path, 403]);
        expect(errorOf(res.body)).toMatchObject({ type: "invalid_request_error", code: "host_not_allowed" });
        expect(res.headers["content-type"]).toContain("application/json");
      }
    }
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, "LOCALHOST", `[::1]:${port}`]) {
      const res = await one(`GET /v1/models HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      expect([host, res.status]).toEqual([host, 200]);
    }
  });

  test("with an API key the key decides, whatever the Host", async () => {
    using t = createTempDir("flashchat-edges-key-");
    const s = await startTestServer(t.dir, { startEngine: createFakeEngineFactory().start, apiKey: "k3y" });
    try {
      const r = await sendRaw(s.port, "GET /v1/models HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer k3y\r\n\r\n", { until: (x) => parseResponses(x).responses.length > 0 });
      expect(parseResponses(r.text).responses[0]!.status).toBe(200);
    } finally {
      await s.stop(100);
    }
  });
});

describe("requests the URL parser used to turn into 500s", () => {
  test("HTTP/1.0 without a Host header is served", async () => {
    const res = await one("GET /v1/models HTTP/1.0\r\n\r\n");
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).data[0].id).toBe("tiny");
    const health = await one("GET /health HTTP/1.0\r\n\r\n");
    expect(health.status).toBe(200);
    const post = await one(`POST /v1/chat/completions HTTP/1.0\r\nContent-Length: ${chatBody.length}\r\n\r\n${chatBody}`);
    expect(post.status).toBe(200);
    expect(JSON.parse(post.body).object).toBe("chat.completion");
  });

  test("bad percent-encoding in the path is a 400 or 404 in OpenAI's shape", async () => {
    const cases: [string, number][] = [
      ["/v1/models/%E0%A4%A", 400],
      ["/v1/models/%zz", 400],
      ["/%", 404],
      ["/%zz", 404],
      ["/v1/%E0%A4%A", 404],
    ];
    for (const [path, status] of cases) {
      const res = await one(`GET ${path} HTTP/1.1\r\n${hostLine()}\r\n`);
      expect([path, res.status]).toEqual([path, status]);
      expect(errorOf(res.body).type).toMatch(/invalid_request_error|not_found_error/);
    }
  });

  test("a Host header the URL parser cannot take ('a b') is refused, not a 500; with a key it is served", async () => {
    const res = await one("GET /v1/models HTTP/1.1\r\nHost: a b\r\n\r\n");
    expect(res.status).toBe(403);
  });

  test("a request target that is not a path (CONNECT) is a 400", async () => {
    const res = await one(`CONNECT example.com:443 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    expect(res.status).toBe(400);
    expect(errorOf(res.body).code).toBe("invalid_path");
  });

  test("path helpers: the authority is cut by hand, the path kept whole", () => {
    expect(resolveRequestUrl("/x?y=1")!.pathname).toBe("/x");
    expect(resolveRequestUrl("http://a b/v1/models")!.pathname).toBe("/v1/models");
    expect(resolveRequestUrl("http://evil.example//v1")!.pathname).toBe("//v1");
    expect(resolveRequestUrl("http://h?q")!.pathname).toBe("/");
    expect(resolveRequestUrl("example.com:443")).toBeUndefined();
    expect(resolveRequestUrl("*")).toBeUndefined();
    expect(decodePathPart("caf%C3%A9")).toBe("café");
    expect(decodePathPart("%E0%A4%A")).toBeUndefined();
  });
});

describe("the body limit counts bytes and stops reading at the limit", () => {
  const chunked = (payload: string) => {
    const bytes = Buffer.from(payload);
    return `POST /v1/chat/completions HTTP/1.1\r\n${hostLine()}Transfer-Encoding: chunked\r\n\r\n${bytes.length.toString(16)}\r\n${bytes.toString("latin1")}\r\n0\r\n\r\n`;
  };

  test("a chunked body of 2-byte characters over the byte limit is a 413 (its character count is under it)", async () => {
    const text = "é".repeat(LIMIT / 2 + 100); // 2 bytes each: over the limit in bytes, about half of it in characters
    const payload = JSON.stringify({ messages: [{ role: "user", content: text }], max_tokens: 1 });
    expect(payload.length).toBeLessThan(LIMIT);
    expect(Buffer.byteLength(payload)).toBeGreaterThan(LIMIT);
    const res = await one(chunked(payload));
    expect(res.status).toBe(413);
    expect(errorOf(res.body)).toMatchObject({ type: "invalid_request_error", code: "request_too_large" });
  });

  test("a body just under the limit in bytes passes the limit (and is then validated)", async () => {
    const payload = JSON.stringify({ messages: [{ role: "user", content: "é".repeat(LIMIT / 2 - 100) }], max_tokens: 1 });
    expect(Buffer.byteLength(payload)).toBeLessThanOrEqual(LIMIT);
    const res = await one(chunked(payload));
    expect(res.status).not.toBe(413);
  });

  test("a Content-Length over the limit is an OpenAI-shaped 413 without reading the body", async () => {
    const res = await one(`POST /v1/chat/completions HTTP/1.1\r\n${hostLine()}Content-Length: 100000000\r\n\r\n`);
    expect(res.status).toBe(413);
    expect(errorOf(res.body).code).toBe("request_too_large");
  });

  test("a 100 MB chunked body: the 413 arrives long before the client has sent it all", async () => {
    const { status, body, sentBytes } = await new Promise<{ status: number; body: string; sentBytes: number }>((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1");
      const total = 100 * 1024 * 1024;
      const chunk = Buffer.concat([Buffer.from("10000\r\n"), Buffer.alloc(0x10000, 0x61), Buffer.from("\r\n")]);
      let sent = 0;
      let text = "";
      let sentAtAnswer = -1;
      s.on("data", (d) => {
        if (sentAtAnswer < 0) sentAtAnswer = sent;
        text += d.toString("latin1");
        const [res] = parseResponses(text).responses;
        if (res) {
          s.destroy();
          resolve({ status: res.status, body: res.body, sentBytes: sentAtAnswer });
        }
      });
      s.on("error", () => {});
      s.on("close", () => reject(new Error(`closed without a response after ${sent} bytes`)));
      s.write(`POST /v1/chat/completions HTTP/1.1\r\n${hostLine()}Transfer-Encoding: chunked\r\n\r\n`);
      const pump = () => {
        while (sent < total && sentAtAnswer < 0 && !s.destroyed) {
          sent += 0x10000;
          if (!s.write(chunk)) return void s.once("drain", pump);
        }
      };
      pump();
    });
    expect(status).toBe(413);
    expect(errorOf(body).code).toBe("request_too_large");
    // what was sent by then is the limit plus what the kernel's socket buffers hold, not the body
    expect(sentBytes).toBeLessThan(24 * 1024 * 1024);
  });

  test("a chunked body that breaks its framing mid-way is a 400, not a 500", async () => {
    const head = `POST /v1/chat/completions HTTP/1.1\r\n${hostLine()}Transfer-Encoding: chunked\r\n\r\n5\r\n{"mes\r\n`;
    const r = await new Promise<string>((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      let text = "";
      s.on("data", (d) => (text += d.toString("latin1")));
      s.on("close", () => resolve(text));
      s.on("error", () => {});
      s.write(head);
      setTimeout(() => s.write("zz\r\nnot hex\r\n"), 50); // after the handler started reading
    });
    expect(r).toMatch(/^HTTP\/1\.1 400/);
  });
});

describe("connections", () => {
  test("pipelined GETs are all answered, in order", async () => {
    const r = await sendRaw(port, get("/health", hostLine()) + get("/v1/models", hostLine()) + get("/v1", hostLine()), { until: (t) => parseResponses(t).responses.length === 3 });
    const { responses } = parseResponses(r.text);
    expect(responses.map((x) => x.status)).toEqual([200, 200, 200]);
    expect(JSON.parse(responses[0]!.body).status).toBe("ok");
    expect(JSON.parse(responses[1]!.body).object).toBe("list");
    expect(JSON.parse(responses[2]!.body).name).toBe("flashchat");
  });

  test("GET, POST, GET, GET pipelined: answered in order, or the connection closed cleanly after the ones answered", async () => {
    const nBefore = fake.engines[0]!.nGenerates;
    const long = JSON.stringify({ messages: [{ role: "user", content: "x" }], max_tokens: 200 });
    const post = `POST /v1/chat/completions HTTP/1.1\r\n${hostLine()}Content-Type: application/json\r\nContent-Length: ${long.length}\r\n\r\n${long}`;
    const r = await sendRaw(port, get("/health", hostLine()) + post + get("/v1/models", hostLine()) + get("/health", hostLine()), {
      until: (t) => parseResponses(t).responses.length === 4,
    });
    const { responses, rest } = parseResponses(r.text);
    const expected = [
      (x: { status: number; body: string }) => x.status === 200 && JSON.parse(x.body).status === "ok",
      (x: { status: number; body: string }) => x.status === 200 && JSON.parse(x.body).object === "chat.completion",
      (x: { status: number; body: string }) => x.status === 200 && JSON.parse(x.body).object === "list",
      (x: { status: number; body: string }) => x.status === 200 && JSON.parse(x.body).status === "ok",
    ];
    expect(responses.length).toBeGreaterThanOrEqual(1);
    responses.forEach((res, i) => expect([i, expected[i]!(res)]).toEqual([i, true]));
    expect(rest).toBe(""); // never half a response
    if (responses.length === 4) return;
    // Bun (uWS) does not pipeline behind an answer still being produced: it closes the connection. The
    // request it dropped is cancelled like any client that went away, not left running.
    expect(r.closed).toBe(true);
    const log = join(tmp.dir, "logs", "server.log");
    // dropped while its prompt was being prepared (499) or while it streamed (200, cancelled): never run to the end
    const dropped = /POST \/v1\/chat\/completions (200 .*completion=(\d|[1-9]\d) .*cancelled by the client|499 .*the client closed the request)/;
    for (let i = 0; i < 500 && !dropped.test(readFileSync(log, "utf8")); i++) await Bun.sleep(10);
    expect(readFileSync(log, "utf8")).toMatch(dropped);
    expect(fake.engines[0]!.nGenerates - nBefore).toBeLessThanOrEqual(1);
  });

  test("garbage request lines get an answer or a clean close, never a connection held open", async () => {
    for (const garbage of ["HELLO WORLD\r\n\r\n", "GET\r\n\r\n", "\x16\x03\x01\x00\xa5\x01\x00", "GET / HTTP/9.9\r\nHost: a\r\n\r\n"]) {
      const r = await sendRaw(port, garbage, { idleMs: 30_000 });
      expect([JSON.stringify(garbage), r.closed]).toEqual([JSON.stringify(garbage), true]);
      expect(r.text === "" || /^HTTP\/1\.1 (400|505) /.test(r.text)).toBe(true);
    }
  });

  test("garbage or a cut request after a kept-alive exchange: the idle timeout closes the connection", async () => {
    for (const after of ["GET\r\n\r\n", "GET /v1/models HTTP/1.1\r\nHo"]) {
      const r = await new Promise<{ text: string; closed: boolean }>((resolve) => {
        const s = net.connect(port, "127.0.0.1");
        let text = "";
        s.on("data", (d) => {
          text += d.toString("latin1");
          if (parseResponses(text).responses.length === 1 && !text.includes("\u0000sent")) {
            text += "\u0000sent";
            s.write(after);
          }
        });
        s.on("close", () => resolve({ text, closed: true }));
        s.on("error", () => {});
        s.setTimeout(30_000, () => {
          s.destroy();
          resolve({ text, closed: false });
        });
        s.write(get("/health", hostLine()));
      });
      expect([after, r.closed]).toEqual([after, true]);
    }
  });

  test("Bun's own answers to a header block over its limit and to an unknown HTTP version end the connection", async () => {
    const big = await sendRaw(port, `GET /health HTTP/1.1\r\n${hostLine()}X-Big: ${"a".repeat(100_000)}\r\n\r\n`, { idleMs: 30_000 });
    expect(big.text).toMatch(/^HTTP\/1\.1 431 /);
    expect(big.closed).toBe(true);
    const v2 = await sendRaw(port, `GET /health HTTP/2.0\r\n${hostLine()}\r\n`, { idleMs: 30_000 });
    expect(v2.text).toMatch(/^HTTP\/1\.1 505 /);
    expect(v2.closed).toBe(true);
  });

  test("a generation slower than the idle timeout is not cut off", async () => {
    using t = createTempDir("flashchat-edges-slow-");
    const slow = createFakeEngineFactory({ tokenDelayMs: 2500 });
    const s = await startTestServer(t.dir, { startEngine: slow.start, idleTimeoutSeconds: 1 });
    try {
      const body = JSON.stringify({ messages: [{ role: "user", content: "x" }], max_tokens: 2 });
      const r = await fetch(`${s.url}/v1/chat/completions`, { method: "POST", body });
      expect(r.status).toBe(200);
      expect(((await r.json()) as any).usage.completion_tokens).toBe(2);
      const streamed = await (await fetch(`${s.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ ...JSON.parse(body), stream: true }) })).text();
      expect(streamed).toEndWith("data: [DONE]\n\n");
    } finally {
      await s.stop(100);
    }
  });
});
