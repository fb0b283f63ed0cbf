import { expect, test } from "bun:test";
import { createSseStream, parseSseFrames, renderSseData, renderSseEvent, SSE_DONE } from "../../lib/server/sse.ts";

test("SSE frames round-trip and the stream ends cleanly", async () => {
  let cancelled = false;
  const { stream, writer } = createSseStream(() => {
    cancelled = true;
  });
  writer.write(renderSseData({ a: "x\ny" }));
  writer.write(renderSseEvent("response.created", { b: 1 }));
  writer.write(SSE_DONE);
  writer.close();
  writer.write("ignored after close");
  const text = await new Response(stream).text();
  expect(text).toBe('data: {"a":"x\\ny"}\n\nevent: response.created\ndata: {"b":1}\n\ndata: [DONE]\n\n');
  expect(parseSseFrames(text)).toEqual([{ event: undefined, data: '{"a":"x\\ny"}' }, { event: "response.created", data: '{"b":1}' }, { event: undefined, data: "[DONE]" }]);
  expect(cancelled).toBe(false);
});

test("a client that cancels the body is reported", async () => {
  let cancelled = false;
  const { stream, writer } = createSseStream(() => {
    cancelled = true;
  });
  writer.write(renderSseData(1));
  await stream.cancel();
  expect(cancelled).toBe(true);
  expect(writer.closed).toBe(true);
});
