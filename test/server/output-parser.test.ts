import { describe, expect, test } from "bun:test";
import { createOutputParser, type OutputEvent, promptOpensReasoning } from "../../lib/server/output-parser.ts";
import type { ToolSpec } from "../../lib/server/tool-calls.ts";

const tools = new Map<string, ToolSpec>([
  ["get_weather", { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" }, metric: { type: "boolean" } } } }],
  ["write_file", { name: "write_file", parameters: { type: "object", properties: { path: { type: "string" }, content: { type: "string" } } } }],
]);

interface Summary {
  reasoning: string;
  content: string;
  calls: { name: string; arguments: unknown }[];
}

function summarize(events: OutputEvent[]): Summary {
  const s: Summary = { reasoning: "", content: "", calls: [] };
  for (const e of events) {
    if (e.type === "reasoning") s.reasoning += e.text;
    else if (e.type === "content") s.content += e.text;
    else s.calls.push({ name: e.name, arguments: JSON.parse(e.arguments) });
  }
  return s;
}

function run(chunks: string[], opts: Parameters<typeof createOutputParser>[0]): OutputEvent[] {
  const p = createOutputParser(opts);
  const events: OutputEvent[] = [];
  for (const c of chunks) events.push(...p.push(c));
  events.push(...p.finish());
  return events;
}

// Model outputs in the shapes Qwen3 (JSON calls, model opens <think> itself) and Qwen3.5 / Qwen3-Coder
// (XML calls, template opens <think>) produce.
const CASES: { name: string; text: string; opts: Parameters<typeof createOutputParser>[0]; want: Summary }[] = [
  {
    name: "qwen3 thinking then answer",
    text: "<think>\nThe user greets me. I should greet back.\n</think>\n\nHello! How can I help you today?",
    opts: { parseToolCalls: false },
    want: { reasoning: "The user greets me. I should greet back.", content: "Hello! How can I help you today?", calls: [] },
  },
  {
    name: "qwen3.5 template-opened thinking",
    text: "Let me think about 2+2.\nIt is 4.\n</think>\n\nThe answer is **4**.\n",
    opts: { startInReasoning: true, parseToolCalls: true, tools },
    want: { reasoning: "Let me think about 2+2.\nIt is 4.", content: "The answer is **4**.\n", calls: [] },
  },
  {
    name: "qwen3 JSON tool call after thinking",
    text: '<think>\nI need the weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>',
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "I need the weather.", content: "", calls: [{ name: "get_weather", arguments: { city: "Paris", days: 3 } }] },
  },
  {
    name: "two JSON tool calls with text before",
    text: 'Let me check both cities.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "", content: "Let me check both cities.", calls: [{ name: "get_weather", arguments: { city: "Paris" } }, { name: "get_weather", arguments: { city: "Oslo" } }] },
  },
  {
    name: "qwen3.5 XML tool call typed by schema",
    text: "I will look it up.\n</think>\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nSão Paulo\n</parameter>\n<parameter=days>\n5\n</parameter>\n<parameter=metric>\ntrue\n</parameter>\n</function>\n</tool_call>",
    opts: { startInReasoning: true, parseToolCalls: true, tools },
    want: { reasoning: "I will look it up.", content: "", calls: [{ name: "get_weather", arguments: { city: "São Paulo", days: 5, metric: true } }] },
  },
  {
    name: "XML call with multi-line code value containing tags",
    text: '<tool_call>\n<function=write_file>\n<parameter=path>\nsrc/a.ts\n</parameter>\n<parameter=content>\nconst x = "<think>";\nif (a < b) {}\n\n</parameter>\n</function>\n</tool_call>\n',
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "", content: "", calls: [{ name: "write_file", arguments: { path: "src/a.ts", content: 'const x = "<think>";\nif (a < b) {}\n' } }] },
  },
  {
    name: "malformed JSON call comes back as text",
    text: 'Calling.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"\n</tool_call>',
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "", content: 'Calling.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"\n</tool_call>', calls: [] },
  },
  {
    name: "malformed XML call comes back as text",
    text: "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</function>\n</tool_call>",
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "", content: "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</function>\n</tool_call>", calls: [] },
  },
  {
    name: "cut off inside a tool call: text, not dropped",
    text: '<tool_call>\n{"name": "get_weather", "argu',
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "", content: '<tool_call>\n{"name": "get_weather", "argu', calls: [] },
  },
  {
    name: "complete call missing only </tool_call> at the end is kept",
    text: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n',
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "", content: "", calls: [{ name: "get_weather", arguments: { city: "Rome" } }] },
  },
  {
    name: "tools off: tags are plain content",
    text: 'Use <tool_call>{"name": "x", "arguments": {}}</tool_call> like this.',
    opts: { parseToolCalls: false },
    want: { reasoning: "", content: 'Use <tool_call>{"name": "x", "arguments": {}}</tool_call> like this.', calls: [] },
  },
  {
    name: "a '<' that is not a tag",
    text: "if a <b and c < d then <tool or <think? done",
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "", content: "if a <b and c < d then <tool or <think? done", calls: [] },
  },
  {
    name: "<think> after content is content",
    text: "Answer: use the <think> tag.",
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "", content: "Answer: use the <think> tag.", calls: [] },
  },
  {
    name: "unterminated reasoning (cut by max_tokens)",
    text: "<think>\nStill thinking about <tool",
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "Still thinking about <tool", content: "", calls: [] },
  },
  {
    name: "a stray <think> after text does not hide a later tool call",
    text: 'Answer: <think> x <tool_call>\n{"name": "get_weather", "arguments": {"city": "Nice"}}\n</tool_call>',
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "", content: "Answer: <think> x", calls: [{ name: "get_weather", arguments: { city: "Nice" } }] },
  },
  {
    name: "Qwen3-Coder bare <function=…> call without the <tool_call> wrapper",
    text: "Let me look.\n<function=get_weather>\n<parameter=city>\nLyon\n</parameter>\n</function>\n",
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "", content: "Let me look.", calls: [{ name: "get_weather", arguments: { city: "Lyon" } }] },
  },
  {
    name: "a bare <function= that never closes is text",
    text: "see <function=foo> in the docs",
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "", content: "see <function=foo> in the docs", calls: [] },
  },
  {
    name: "leading whitespace before <think>",
    text: "\n\n<think>\nok\n</think>\n\nDone.",
    opts: { parseToolCalls: true, tools },
    want: { reasoning: "ok", content: "Done.", calls: [] },
  },
  {
    name: "unicode content",
    text: "<think>\n考えます 🤔\n</think>\n\n答え: 😀 ok",
    opts: {},
    want: { reasoning: "考えます 🤔", content: "答え: 😀 ok", calls: [] },
  },
];

describe("output parser on recorded outputs", () => {
  for (const c of CASES) {
    test(`${c.name}: whole`, () => {
      expect(summarize(run([c.text], c.opts))).toEqual(c.want);
    });
    test(`${c.name}: split at every boundary into two and into single characters`, () => {
      const chars = Array.from(c.text);
      for (let i = 0; i <= chars.length; i++) {
        const chunks = [chars.slice(0, i).join(""), chars.slice(i).join("")];
        expect(summarize(run(chunks, c.opts))).toEqual(c.want);
      }
      expect(summarize(run(chars, c.opts))).toEqual(c.want);
    });
    test(`${c.name}: three-way splits never leak a raw tool call into content`, () => {
      const chars = Array.from(c.text);
      const step = Math.max(1, Math.floor(chars.length / 25));
      for (let i = 0; i <= chars.length; i += step)
        for (let j = i; j <= chars.length; j += step) {
          const chunks = [chars.slice(0, i).join(""), chars.slice(i, j).join(""), chars.slice(j).join("")];
          const got = summarize(run(chunks, c.opts));
          expect(got).toEqual(c.want);
        }
    });
  }

  test("well-formed calls never put <tool_call> in content, at any split", () => {
    for (const c of CASES.filter((c) => c.want.calls.length > 0)) {
      const chars = Array.from(c.text);
      for (let i = 0; i <= chars.length; i++) {
        const s = summarize(run([chars.slice(0, i).join(""), chars.slice(i).join("")], c.opts));
        expect(s.content).not.toContain("<tool_call>");
        expect(s.content).not.toContain("</tool_call>");
        expect(s.content).not.toContain("<function=");
      }
    }
  });

  test("tool calls get distinct stable ids and increasing indexes", () => {
    const events = run([CASES[3]!.text], CASES[3]!.opts).filter((e) => e.type === "tool_call");
    expect(events.map((e) => (e.type === "tool_call" ? e.index : -1))).toEqual([0, 1]);
    const ids = events.map((e) => (e.type === "tool_call" ? e.id : ""));
    expect(new Set(ids).size).toBe(2);
    for (const id of ids) expect(id).toMatch(/^call_[A-Za-z0-9]{24}$/);
  });

  test("content streams before the end (not all buffered)", () => {
    const p = createOutputParser({ parseToolCalls: true, tools });
    expect(summarize(p.push("Hello there, ")).content).toBe("Hello there,");
    expect(summarize(p.push("friend <tool")).content).toBe(" friend");
  });
});

describe("promptOpensReasoning", () => {
  test("detects a generation prompt ending in an open <think>", () => {
    expect(promptOpensReasoning("<|im_start|>assistant\n<think>\n")).toBe(true);
    expect(promptOpensReasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n")).toBe(false);
    expect(promptOpensReasoning("<|im_start|>assistant\n")).toBe(false);
    expect(promptOpensReasoning("<think>\nold\n</think>\nx<|im_start|>assistant\n")).toBe(false);
  });
});
