import { describe, expect, test } from "bun:test";
import { ApiError } from "../../lib/server/errors.ts";
import { createRequestQueue } from "../../lib/server/queue.ts";

describe("request queue", () => {
  test("runs requests one at a time in arrival order", async () => {
    const q = createRequestQueue({ maxWaiting: 10 });
    const order: string[] = [];
    const job = async (name: string, ms: number) => {
      const release = await q.acquire();
      order.push(`start ${name}`);
      await Bun.sleep(ms);
      order.push(`end ${name}`);
      release();
    };
    await Promise.all([job("a", 20), job("b", 1), job("c", 1)]);
    expect(order).toEqual(["start a", "end a", "start b", "end b", "start c", "end c"]);
    expect(q.busy).toBe(false);
  });

  test("a full queue answers 429 with Retry-After", async () => {
    const q = createRequestQueue({ maxWaiting: 1, retryAfterSeconds: () => 7.2 });
    const r1 = await q.acquire();
    const p2 = q.acquire();
    const e = await q.acquire().catch((e) => e);
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(429);
    expect(e.headers["retry-after"]).toBe("8");
    r1();
    const r2 = await p2;
    expect(q.nWaiting).toBe(0);
    r2();
  });

  test("an aborted waiter leaves the queue; release is idempotent", async () => {
    const q = createRequestQueue({ maxWaiting: 2 });
    const r1 = await q.acquire();
    const ac = new AbortController();
    const p2 = q.acquire(ac.signal);
    const p3 = q.acquire();
    expect(q.nWaiting).toBe(2);
    ac.abort(new Error("client left"));
    expect((await p2.catch((e) => e)).message).toBe("client left");
    expect(q.nWaiting).toBe(1);
    r1();
    r1();
    const r3 = await p3;
    expect(q.busy).toBe(true);
    r3();
    expect(q.busy).toBe(false);
  });
});
