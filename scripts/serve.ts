#!/usr/bin/env bun
// The OpenAI-compatible server. `bun scripts/serve.ts` runs it in the foreground; `flashchat serve` starts it
// in the background (pid file, waits for /health); `--stop` stops the background one.
//   bun scripts/serve.ts --port 8080            flashchat serve --model demo          flashchat serve --stop
import { defineCommand } from "citty";
import { contextArgs, globalArgs, modelArgs, parseIntFlag, runScript, yesArgs } from "../lib/cli.ts";
import { loadFlashchatConfig } from "../lib/config/index.ts";
import { UserError } from "../lib/errors.ts";
import { SERVER_MARKER } from "../lib/process/process-info.ts";
import { checkLoadedModel, stopServer, useDefaultModel } from "../lib/client/local.ts";
import { resolveModelTarget } from "../lib/model/target.ts";
import { readServerState, startServerInBackground } from "../lib/process/server-control.ts";
import { checkConfiguredBind, checkContextSize, runForegroundServer } from "../lib/server/foreground.ts";
import { REASONING_FORMATS, type ReasoningFormat } from "../lib/server/validate.ts";

const command = defineCommand({
  meta: { name: "serve", description: "OpenAI-compatible server (background under `flashchat serve`, --stop stops it)" },
  args: {
    ...globalArgs,
    ...modelArgs,
    ...contextArgs,
    ...yesArgs,
    port: { type: "string", description: "Port to listen on (SERVER_PORT)", valueHint: "N" },
    host: { type: "string", description: "Address to bind (SERVER_HOST); beyond loopback needs FLASHCHAT_API_KEY", valueHint: "ADDR" },
    insecure: { type: "boolean", description: "Allow a non-loopback bind without an API key" },
    stop: { type: "boolean", description: "Stop the background server" },
    foreground: { type: "boolean", description: "Run in this terminal (the default for `bun scripts/serve.ts`)" },
    reasoning: { type: "string", description: "Reasoning in replies: separate (reasoning_content), inline (<think> tags) or drop", valueHint: "FORMAT" },
    testHooks: { type: "boolean", description: "Accept force_text / force_tokens in requests (tests only)" },
    keepAlive: { type: "string", description: "Unload the model after S idle seconds, load it again on the next request (KEEP_ALIVE; 0 = never)", valueHint: "S" },
  },
  async run({ args, rawArgs }) {
    const reasoning = args.reasoning as ReasoningFormat | undefined;
    const keepAliveS = parseIntFlag(args.keepAlive, "--keep-alive", 0);
    if (reasoning !== undefined && !REASONING_FORMATS.includes(reasoning))
      throw new UserError(`--reasoning must be one of ${REASONING_FORMATS.join(", ")}`, undefined, 2);
    const loaded = await loadFlashchatConfig({
      configFile: args.config,
      overrides: { MODEL_REPO: args.model, SERVER_PORT: args.port, SERVER_HOST: args.host, CONTEXT_SIZE: args.context },
      flagNames: { MODEL_REPO: "--model", SERVER_PORT: "--port", SERVER_HOST: "--host", CONTEXT_SIZE: "--context" },
    });
    // --stop and a server started by `flashchat serve` (which passes --model) need no default model
    const config = args.stop || rawArgs.includes(SERVER_MARKER) ? loaded : await useDefaultModel(loaded);
    if (args.stop) {
      const r = await stopServer(config);
      process.stderr.write(`${r.message}\n`);
      return;
    }
    const apiKey = config.apiKey || undefined;
    const child = rawArgs.includes(SERVER_MARKER); // started by `flashchat serve`, which prepared the model
    checkConfiguredBind(config.serverHost, apiKey, args.insecure ?? false);
    resolveModelTarget(config); // a model that does not resolve (a missing folder) is the first error
    const background = !(args.foreground || import.meta.main || child);
    // a running server with another model loaded: ask to restart it (terminal), else say how
    const running = background && (await readServerState(config)).running;
    if (running && (await checkLoadedModel(config, { command: "serve" })) === "same") {
      // nothing to prepare: it says where the server runs (or that it runs on another port than --port asked)
      await startServerInBackground(config, { host: config.serverHost, port: config.serverPort, strictPort: args.port !== undefined });
      return;
    }
    if (!child) {
      // like chat and prompt: set up what is missing first (asks before downloads; --yes without a terminal)
      const { ensureReady } = await import("../lib/setup/index.ts");
      await ensureReady(config, { yes: args.yes });
      checkContextSize(config);
    }
    if (!background) {
      await runForegroundServer(config, { insecure: args.insecure, apiKey, testHooks: args.testHooks, reasoningFormat: reasoning, echo: !!process.stderr.isTTY, keepAliveS });
      return;
    }
    const forward = [
      ...(args.config ? ["--config", args.config] : []),
      // the model this command resolved (also the default one picked because it is set up)
      "--model",
      config.modelRepo,
      ...(args.context ? ["--context", args.context] : []),
      ...(args.insecure ? ["--insecure"] : []),
      ...(reasoning ? ["--reasoning", reasoning] : []),
      ...(args.testHooks ? ["--test-hooks"] : []),
      ...(keepAliveS !== undefined ? ["--keep-alive", String(keepAliveS)] : []),
    ];
    await startServerInBackground(config, { host: config.serverHost, port: config.serverPort, forwardArgs: forward, strictPort: args.port !== undefined });
  },
});

export default command;
if (import.meta.main) await runScript(command);
