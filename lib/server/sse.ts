// Server-sent events framing: `data: JSON\n\n` chunks (chat completions) and named events (responses API).

const encoder = new TextEncoder();

export const renderSseData = (data: unknown): string => `data: ${JSON.stringify(data)}\n\n`;
export const renderSseEvent = (event: string, data: unknown): string =>
  `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
export const SSE_DONE = "data: [DONE]\n\n";

export const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  connection: "keep-alive",
  "x-accel-buffering": "no",
} as const;

/** A push-style SSE body: `write` frames, `close` ends it; `closed` tells whether the client went away. */
export interface SseWriter {
  write(frame: string): void;
  close(): void;
  readonly closed: boolean;
}

export function createSseStream(onCancel: () => void): { stream: ReadableStream<Uint8Array>; writer: SseWriter } {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel() {
      closed = true;
      onCancel();
    },
  });
  const writer: SseWriter = {
    write(frame) {
      if (closed) return;
      try {
        controller.enqueue(encoder.encode(frame));
      } catch {
        closed = true;
        onCancel();
      }
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        controller.close();
      } catch {
        // already closed by the client
      }
    },
    get closed() {
      return closed;
    },
  };
  return { stream, writer };
}

/** Split an SSE body into its `data:` payloads (used by tests and the chat client). */
export function parseSseFrames(text: string): { event?: string; data: string }[] {
  const frames: { event?: string; data: string }[] = [];
  for (const block of text.split("\n\n")) {
    if (!block.trim()) continue;
    let event: string | undefined;
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    frames.push({ event, data: data.join("\n") });
  }
  return frames;
}
