// Worker thread of lib/server/prompt-pool.ts: loads the model's tokenizer and chat template once, then renders and
// tokenizes prompts (preparePrompt) off the server's event loop. Messages: init -> ready | failed; prepare -> result.
import { loadChatTemplate } from "./chat-template.ts";
import { ApiError } from "./errors.ts";
import { type GenerationDefaults, type ModelContext, preparePrompt } from "./generate.ts";
import { loadTokenizer } from "./tokenizer.ts";
import type { GenerationRequest } from "./validate.ts";

declare const self: Worker;

export type PromptWorkerRequest =
  | { type: "init"; tokenizerDir: string; cacheDir?: string }
  | { type: "prepare"; id: number; req: GenerationRequest; contextTokens: number; defaults: GenerationDefaults };

export type PromptWorkerReply =
  | { type: "ready" }
  | { type: "failed"; message: string }
  | { type: "result"; id: number; prompt: ReturnType<typeof preparePrompt> }
  | { type: "error"; id: number; api?: { status: number; message: string; param: string | null; code: string | null }; message: string; stack?: string };

let model: ModelContext | undefined;

self.onmessage = async (event: MessageEvent<PromptWorkerRequest>) => {
  const msg = event.data;
  if (msg.type === "init") {
    try {
      model = { tokenizer: await loadTokenizer(msg.tokenizerDir, { cacheDir: msg.cacheDir, writeCache: false }), template: loadChatTemplate(msg.tokenizerDir) };
      self.postMessage({ type: "ready" } satisfies PromptWorkerReply);
    } catch (e) {
      self.postMessage({ type: "failed", message: (e as Error).message } satisfies PromptWorkerReply);
    }
    return;
  }
  try {
    const prompt = preparePrompt(model!, msg.req, msg.contextTokens, msg.defaults);
    self.postMessage({ type: "result", id: msg.id, prompt } satisfies PromptWorkerReply);
  } catch (e) {
    const err = e as Error;
    const api = e instanceof ApiError ? { status: e.status, message: e.message, param: e.param, code: e.code } : undefined;
    self.postMessage({ type: "error", id: msg.id, api, message: err.message, stack: err.stack } satisfies PromptWorkerReply);
  }
};
