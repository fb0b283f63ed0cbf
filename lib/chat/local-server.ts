// A private server for one `flashchat prompt` when none is running: lib/server's app, engine and all, on a
// free loopback port, stopped as soon as the reply is done (nothing is left running, no pid file).
import type { ResolvedConfig } from "../config/schema.ts";

export interface LocalServer {
  url: string;
  model?: string;
  stop: () => Promise<void>;
}

export async function startLocalServer(config: ResolvedConfig): Promise<LocalServer> {
  // imported here so `prompt` against a running server never loads the server code
  const { startConfiguredServer } = await import("../server/foreground.ts");
  process.stderr.write(`no server is running: loading ${config.modelRepo} for this reply…\n`);
  const server = await startConfiguredServer({ ...config, serverHost: "127.0.0.1", serverPort: 0 });
  return { url: server.url, model: (await loadModelName(server.url)) ?? config.modelRepo, stop: () => server.stop(0) };
}

async function loadModelName(url: string): Promise<string | undefined> {
  const { loadModelId } = await import("./client.ts");
  return loadModelId(url);
}
