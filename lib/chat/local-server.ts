// A private server for one `flashchat prompt` when none is running: lib/server's app on a free loopback
// port, engine and all, stopped as soon as the reply is done (nothing is left running, no pid file).
import type { ResolvedConfig } from "../config/schema.ts";
import { UserError } from "../errors.ts";

export interface LocalServer {
  url: string;
  model?: string;
  stop: () => Promise<void>;
}

export async function startLocalServer(config: ResolvedConfig): Promise<LocalServer> {
  const { existsSync } = await import("node:fs");
  const { join } = await import("pathe");
  const { resolveModelTarget } = await import("../model/registry.ts");
  const { startServer } = await import("../server/app.ts");
  const target = resolveModelTarget(config);
  if (!target.checkpointDir || !existsSync(join(target.artifactsDir, "model_weights.json"))) {
    throw new UserError(`no server is running and the model ${target.id} is not prepared`, `prepare it with: flashchat setup --model ${target.id}  (or start a server: flashchat serve)`);
  }
  process.stderr.write(`no server running: loading ${target.id} for this reply…\n`);
  const server = await startServer({
    host: "127.0.0.1",
    port: 0,
    modelId: target.id,
    modelAliases: target.repo !== target.id ? [target.repo] : [],
    tokenizerDir: target.checkpointDir,
    engine: {
      artifactsDir: target.artifactsDir,
      expertsDir: target.expertsDir,
      threads: config.threads,
      activeExperts: target.activeExperts,
    },
    defaults: { maxTokens: config.maxTokens, temperature: config.temperature, topP: config.topP },
  });
  await server.engineStarted;
  if (server.host.state !== "ok") {
    const why = server.host.error ?? server.host.state;
    await server.stop(0);
    throw new UserError(`the engine did not start: ${why}`);
  }
  return { url: server.url, model: target.id, stop: () => server.stop(0) };
}
