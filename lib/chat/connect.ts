// Chat wired to the local server, once for every way in (`flashchat chat`, the menu's chat and resume): the
// server link (set the model up first when a server must be started), the API key, then the chat loop.
import { createServerLink, resolveApiKey } from "../client/local.ts";
import type { ResolvedConfig } from "../config/schema.ts";
import { type ChatOptions, runChat } from "./chat.ts";

export interface ConnectedChatOptions extends Omit<ChatOptions, "server" | "apiKey"> {
  /** --config FILE, passed on to a server chat starts. */
  configFile?: string;
  /** --model, passed on to a server chat starts. */
  model?: string;
  /** --context, passed on to a server chat starts. */
  context?: string;
  /** --yes: agree to setup's downloads and large writes. */
  yes?: boolean;
}

export async function runConnectedChat(config: ResolvedConfig, opts: ConnectedChatOptions = {}): Promise<void> {
  const { configFile, model, context, yes, ...chat } = opts;
  const apiKey = resolveApiKey(config);
  const server = createServerLink(config, {
    apiKey,
    configFile,
    model,
    context,
    prepare: async () => (await import("../setup/index.ts")).ensureReady(config, { yes }),
  });
  await runChat(config, { ...chat, server, apiKey });
}
