// The model's own chat template (tokenizer_config.json `chat_template` or chat_template.jinja), rendered with @huggingface/jinja.
import { existsSync, readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";
import { join } from "pathe";
import { UserError } from "../errors.ts";

/** A message as the template sees it: content is a string, tool call arguments are objects. */
export interface TemplateMessage {
  role: string;
  content: string;
  reasoning_content?: string;
  tool_calls?: { id?: string; type: "function"; function: { name: string; arguments: unknown } }[];
  tool_call_id?: string;
  name?: string;
}

export interface TemplateTool {
  type: "function";
  function: { name: string; description?: string; parameters?: unknown };
}

export interface RenderOptions {
  tools?: TemplateTool[];
  /** undefined = the template's default. */
  enableThinking?: boolean;
  addGenerationPrompt?: boolean;
  /** Extra variables (chat_template_kwargs). */
  kwargs?: Record<string, unknown>;
}

export interface ChatTemplate {
  readonly source: string;
  render(messages: TemplateMessage[], opts?: RenderOptions): string;
}

export function createChatTemplate(source: string, special: { bos_token?: string; eos_token?: string } = {}): ChatTemplate {
  const template = new Template(source);
  return {
    source,
    render(messages, opts = {}) {
      const vars: Record<string, unknown> = {
        ...opts.kwargs,
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? true,
        bos_token: special.bos_token ?? "",
        eos_token: special.eos_token ?? "",
      };
      if (opts.tools && opts.tools.length > 0) vars.tools = opts.tools;
      if (opts.enableThinking !== undefined) vars.enable_thinking = opts.enableThinking;
      return template.render(vars);
    },
  };
}

const specialString = (t: unknown) =>
  typeof t === "string" ? t : t && typeof t === "object" && "content" in t ? String((t as { content: unknown }).content) : undefined;

/** Read the template from chat_template.jinja (preferred, newer checkpoints) or tokenizer_config.json. */
export function loadChatTemplate(dir: string): ChatTemplate {
  const configPath = join(dir, "tokenizer_config.json");
  const config = existsSync(configPath) ? (JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>) : {};
  const special = { bos_token: specialString(config.bos_token), eos_token: specialString(config.eos_token) };
  const jinjaPath = join(dir, "chat_template.jinja");
  if (existsSync(jinjaPath)) return createChatTemplate(readFileSync(jinjaPath, "utf8"), special);
  let source = config.chat_template;
  if (Array.isArray(source)) {
    // [{name: "default", template}, {name: "tool_use", ...}]
    const list = source as { name: string; template: string }[];
    source = (list.find((t) => t.name === "default") ?? list[0])?.template;
  }
  if (typeof source !== "string")
    throw new UserError(`no chat template in ${dir}`, "expected chat_template.jinja or a chat_template entry in tokenizer_config.json");
  return createChatTemplate(source, special);
}
