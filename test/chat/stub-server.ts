// A loopback stand-in for the OpenAI-compatible server in client-side tests: records every request
// body and answers with scripted SSE frames (reasoning, content, usage), optionally dying mid-reply.
import { renderSseData, SSE_DONE } from "../../lib/server/sse.ts";

export interface Script {
  reasoning?: string[];
  content: string[];
  /** Stop after this many content frames without finishing (the server "goes away"). */
  dieAfter?: number;
  /** Wait this long between frames. */
  delayMs?: number;
  status?: number;
}

export function startStubServer(next: (body: any) => Script, opts: { health?: () => string; apiKey?: string } = {}) {
  const requests: any[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname === "/health") {
        const status = opts.health?.() ?? "ok";
        return Response.json({ status, model: "stub-model" }, { status: status === "ok" ? 200 : 503 });
      }
      if (opts.apiKey && req.headers.get("authorization") !== `Bearer ${opts.apiKey}`)
        return Response.json({ error: { message: "invalid or missing API key", type: "authentication_error" } }, { status: 401 });
      if (url.pathname === "/v1/models") return Response.json({ object: "list", data: [{ id: "stub-model", object: "model" }] });
      if (url.pathname !== "/v1/chat/completions") return new Response("not found", { status: 404 });
      const body = await req.json();
      requests.push(body);
      const script = next(body);
      if (script.status) return Response.json({ error: { message: "bad thing", type: "invalid_request_error" } }, { status: script.status });
      const frames: string[] = [];
      const chunk = (delta: object, finish: string | null = null) =>
        renderSseData({ id: "c1", object: "chat.completion.chunk", model: "stub-model", choices: [{ index: 0, delta, finish_reason: finish }] });
      frames.push(chunk({ role: "assistant" }));
      for (const r of script.reasoning ?? []) frames.push(chunk({ reasoning_content: r }));
      script.content.forEach((c, i) => {
        if (script.dieAfter === undefined || i < script.dieAfter) frames.push(chunk({ content: c }));
      });
      const n = (script.reasoning?.length ?? 0) + script.content.length;
      if (script.dieAfter === undefined) {
        frames.push(chunk({}, "stop"));
        frames.push(renderSseData({ id: "c1", object: "chat.completion.chunk", choices: [], usage: { prompt_tokens: 11, completion_tokens: n, total_tokens: 11 + n } }));
        frames.push(SSE_DONE);
      }
      const stream = new ReadableStream({
        async pull(ctrl) {
          const f = frames.shift();
          if (f === undefined) {
            ctrl.close(); // after dieAfter frames: the body just ends, with no finish_reason and no [DONE]
            return;
          }
          if (script.delayMs) await Bun.sleep(script.delayMs);
          ctrl.enqueue(new TextEncoder().encode(f));
        },
      });
      return new Response(stream, { headers: { "content-type": "text/event-stream" } });
    },
  });
  return { server, requests, baseUrl: `http://127.0.0.1:${server.port}` };
}
