// lib/engine/client.ts under the watchdog, with a real child process (test/engine/_script-engine.ts): any line the
// engine writes (prefill progress included) keeps a request alive; a silent engine is SIGKILLed by pid.
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import { startEngine } from "../../lib/engine/client.ts";
import { createTempDir, startTestServer } from "../server/_server-fixture.ts";

setDefaultTimeout(30_000);

/** An executable that runs the script engine in `mode` with this bun. */
function scriptEngine(dir: string, mode: "progress" | "silent"): string {
  const path = join(dir, `engine-${mode}.sh`);
  writeFileSync(path, `#!/bin/sh\nexec '${process.execPath}' '${join(import.meta.dir, "_script-engine.ts")}' ${mode}\n`);
  chmodSync(path, 0o755);
  return path;
}

const chat = (url: string) =>
  fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 3 }) });

describe("engine client activity and kill", () => {
  test("activity: idle is never silent; a running request's silence grows; kill() ends it by SIGKILL", async () => {
    using tmp = createTempDir("flashchat-client-kill-");
    const engine = await startEngine({ binary: scriptEngine(tmp.dir, "silent"), artifactsDir: tmp.dir });
    expect(engine.activity()).toEqual({ busy: false, silentMs: 0 });
    const gen = (async () => {
      for await (const _ of engine.generate({ tokens: [1, 2], max_tokens: 2 }));
    })().catch((e) => e);
    for (let i = 0; i < 1000 && !(engine.activity().busy && engine.activity().silentMs > 50); i++) await Bun.sleep(5);
    expect(engine.activity().busy).toBe(true);
    engine.kill("killed by the test", "stalled");
    const err = await gen;
    expect(err).toMatchObject({ code: "stalled", message: "killed by the test" });
    expect(await engine.exited).toBe("SIGKILL");
  });
});

describe("server watchdog with a real child process", () => {
  test("a slow prefill that writes progress lines outlives the watchdog time and succeeds", async () => {
    using tmp = createTempDir("flashchat-progress-");
    const server = await startTestServer(tmp.dir, { engine: { binary: scriptEngine(tmp.dir, "progress"), artifactsDir: tmp.dir }, engineWatchdogMs: 500 });
    try {
      const pid = server.host.engine!.pid;
      const r = await chat(server.url); // 1.5 s of prefill, a progress line every 100 ms
      expect(r.status).toBe(200);
      expect(((await r.json()) as any).usage.completion_tokens).toBe(3);
      expect(server.host.engine!.pid).toBe(pid);
      expect(server.host.nRestarts).toBe(0);
    } finally {
      await server.stop(100);
    }
  });

  test("an engine that writes nothing is killed by pid at the watchdog time and restarted", async () => {
    using tmp = createTempDir("flashchat-silent-");
    const server = await startTestServer(tmp.dir, { engine: { binary: scriptEngine(tmp.dir, "silent"), artifactsDir: tmp.dir }, engineWatchdogMs: 500 });
    try {
      const pid = server.host.engine!.pid;
      const r = await chat(server.url);
      expect(r.status).toBe(503);
      expect(((await r.json()) as any).error.code).toBe("engine_stalled");
      for (let i = 0; i < 1000 && server.host.state !== "ok"; i++) await Bun.sleep(10);
      expect(server.host.state).toBe("ok");
      expect(server.host.engine!.pid).not.toBe(pid);
      expect(() => process.kill(pid, 0)).toThrow();
    } finally {
      await server.stop(100);
    }
  });
});
