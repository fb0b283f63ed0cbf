// Spawned by chat-kill.test.ts: a chat on stdin/stdout against the real HTTP server (in this process) with the
// stand-in engine sending a slow, long reply, so the test can SIGKILL the whole thing mid-reply.
//   bun test/chat/kill-fixture.ts DIR     (HOME and XDG_* come from the environment)
import { join } from "pathe";
import { ChatApp } from "../../lib/chat/chat.ts";
import { loadFlashchatConfig } from "../../lib/config/index.ts";
import { createFakeEngineFactory } from "../server/_fake-engine.ts";
import { startTestServer } from "../server/_server-fixture.ts";

const dir = process.argv[2]!;
const config = { ...(await loadFlashchatConfig({ env: process.env, cwd: dir })), maxTokens: 4000 };
const server = await startTestServer(join(dir, "server"), {
  startEngine: createFakeEngineFactory({ tokenDelayMs: 20 }).start,
  defaults: { maxTokens: 4000, temperature: 0.7, topP: 0.9 },
});
await new ChatApp(config, { server: { ensure: async () => ({ baseUrl: server.url, model: "tiny" }) }, env: {} }).run();
await server.stop(0);
