import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { UserError } from "../../lib/errors.ts";
import { createChatTemplate, loadChatTemplate } from "../../lib/server/chat-template.ts";

const QWEN3 = join(import.meta.dir, "../fixtures/qwen3-tokenizer");
const tmp = mkdtempSync(join(tmpdir(), "flashchat-tpl-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("chat template", () => {
  const tpl = loadChatTemplate(QWEN3);

  test("renders Qwen3's template with the generation prompt", () => {
    expect(tpl.render([{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }])).toBe(
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  test("enable_thinking=false closes an empty think block", () => {
    expect(tpl.render([{ role: "user", content: "Hi" }], { enableThinking: false })).toEndWith("<|im_start|>assistant\n<think>\n\n</think>\n\n");
  });

  test("tools, assistant tool calls and tool results", () => {
    const out = tpl.render(
      [
        { role: "user", content: "Weather in Paris?" },
        { role: "assistant", content: "", tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: { city: "Paris" } } }] },
        { role: "tool", content: '{"temp": 21}', tool_call_id: "call_1" },
      ],
      { tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }] },
    );
    expect(out).toContain('<tools>\n{"type": "function", "function": {"name": "get_weather"');
    expect(out).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>');
    expect(out).toContain("<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response><|im_end|>\n<|im_start|>assistant\n");
  });

  test("chat_template.jinja wins over tokenizer_config.json; a missing template is a user error", () => {
    const dir = join(tmp, "jinja");
    require("node:fs").mkdirSync(dir);
    writeFileSync(join(dir, "chat_template.jinja"), "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}");
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ chat_template: "ignored" }));
    expect(loadChatTemplate(dir).render([{ role: "user", content: "x" }])).toBe("[user]x[assistant]");
    expect(() => loadChatTemplate(tmp)).toThrow(UserError);
  });

  test("XML-style templates (Qwen3.5 / Qwen3-Coder) get tool call arguments as objects; raise_exception surfaces", () => {
    const tpl = createChatTemplate(
      "{%- if messages[0].role != 'user' %}{{ raise_exception('first message must be the user') }}{%- endif %}" +
        "{%- for m in messages %}{%- for tc in m.tool_calls or [] %}<function={{ tc.function.name }}>" +
        "{%- for k, v in tc.function.arguments|items %}<parameter={{ k }}>{{ v | tojson if v is mapping else v }}</parameter>{%- endfor %}" +
        "</function>{%- endfor %}{%- endfor %}",
    );
    const out = tpl.render([
      { role: "user", content: "x" },
      { role: "assistant", content: "", tool_calls: [{ type: "function", function: { name: "f", arguments: { n: 1, o: { k: "v" } } } }] },
    ]);
    expect(out).toBe('<function=f><parameter=n>1</parameter><parameter=o>{"k": "v"}</parameter></function>');
    expect(() => tpl.render([{ role: "system", content: "x" }])).toThrow("first message must be the user");
  });
});
