// Streaming split of model output into reasoning (<think>…</think>), content and tool calls (<tool_call>…</tool_call>).
// Text that could be the start of a tag is withheld until it cannot, so raw tags never reach `content`;
// a tool call that does not parse comes back as text, never dropped.
import { createToolCallId, parseToolCallBody, type ToolSpec } from "./tool-calls.ts";

export type OutputEvent =
  | { type: "reasoning"; text: string }
  | { type: "content"; text: string }
  | { type: "tool_call"; index: number; id: string; name: string; arguments: string };

export interface OutputParserOptions {
  /** The prompt already opened a <think> block (the template put `<think>\n` in the generation prompt). */
  startInReasoning?: boolean;
  /** Recognise <tool_call> blocks (false when the request has no tools or tool_choice is "none"). */
  parseToolCalls?: boolean;
  tools?: ReadonlyMap<string, ToolSpec>;
}

export interface OutputParser {
  push(text: string): OutputEvent[];
  finish(): OutputEvent[];
  readonly nToolCalls: number;
}

const THINK_OPEN = "<think>";
const THINK_CLOSE = "</think>";
const CALL_OPEN = "<tool_call>";
const CALL_CLOSE = "</tool_call>";
/** Qwen3-Coder sometimes writes the XML call without the <tool_call> wrapper. */
const FUNC_OPEN = "<function=";
const FUNC_CLOSE = "</function>";

/** Length of the longest suffix of `s` that is a proper prefix of one of `tags`. */
function partialTagLength(s: string, tags: readonly string[]): number {
  let best = 0;
  for (const tag of tags) {
    for (let n = Math.min(tag.length - 1, s.length); n > best; n--) {
      if (s.endsWith(tag.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}

export function createOutputParser(opts: OutputParserOptions = {}): OutputParser {
  const tools = opts.tools ?? new Map<string, ToolSpec>();
  let mode: "reasoning" | "content" | "tool" | "bare-tool" = opts.startInReasoning ? "reasoning" : "content";
  let buf = "";
  let sawReasoning = mode === "reasoning";
  let nToolCalls = 0;
  let events: OutputEvent[] = [];

  // Each channel drops leading whitespace and withholds trailing whitespace until more text follows
  // (so the "\n\n" around </think> and between tool calls never shows up as content).
  const channel = (type: "reasoning" | "content") => {
    let started = false;
    let pending = "";
    return {
      get started() {
        return started;
      },
      write(text: string) {
        if (!text) return;
        if (!/\S/.test(text)) {
          if (started) pending += text;
          return;
        }
        if (!started) text = text.replace(/^\s+/, "");
        const out = pending + text;
        started = true;
        const m = /\s+$/.exec(out);
        pending = m ? m[0] : "";
        const body = m ? out.slice(0, m.index) : out;
        const last = events.at(-1);
        if (last?.type === type) last.text += body;
        else events.push({ type, text: body });
      },
      dropPending() {
        pending = "";
      },
      flushPending() {
        if (pending) {
          const last = events.at(-1);
          if (last?.type === type) last.text += pending;
          else events.push({ type, text: pending });
        }
        pending = "";
      },
    };
  };
  const reasoning = channel("reasoning");
  const content = channel("content");
  const emitReasoning = (text: string) => reasoning.write(text);
  const emitContent = (text: string) => content.write(text);
  /** `raw` is the text as the model wrote it, returned as content when the call does not parse. */
  const emitCall = (body: string, raw: string) => {
    const call = parseToolCallBody(body, tools);
    if (!call) {
      emitContent(raw);
      return;
    }
    content.dropPending();
    events.push({ type: "tool_call", index: nToolCalls++, id: createToolCallId(), ...call });
  };

  const contentTags = () => (opts.parseToolCalls ? [CALL_OPEN, FUNC_OPEN] : []);
  /** <think> opens reasoning only at the very start of the output (after whitespace). */
  const thinkAllowed = () => !content.started && !sawReasoning && nToolCalls === 0;

  const step = (final: boolean): boolean => {
    if (mode === "reasoning") {
      const i = buf.indexOf(THINK_CLOSE);
      if (i >= 0) {
        emitReasoning(buf.slice(0, i));
        reasoning.dropPending();
        buf = buf.slice(i + THINK_CLOSE.length);
        mode = "content";
        return true;
      }
      const keep = final ? 0 : partialTagLength(buf, [THINK_CLOSE]);
      emitReasoning(buf.slice(0, buf.length - keep));
      buf = buf.slice(buf.length - keep);
      return false;
    }
    if (mode === "content") {
      if (thinkAllowed()) {
        const t = buf.trimStart();
        if (t.startsWith(THINK_OPEN)) {
          buf = t.slice(THINK_OPEN.length);
          mode = "reasoning";
          sawReasoning = true;
          return true;
        }
        if (!final && THINK_OPEN.startsWith(t)) return false; // whitespace and maybe the start of <think>: wait
      }
      const tags = contentTags();
      let at = -1;
      let tag = "";
      for (const t of tags) {
        const i = buf.indexOf(t);
        if (i >= 0 && (at < 0 || i < at)) {
          at = i;
          tag = t;
        }
      }
      if (at >= 0) {
        emitContent(buf.slice(0, at));
        buf = buf.slice(at + tag.length);
        mode = tag === CALL_OPEN ? "tool" : "bare-tool";
        return true;
      }
      const keep = final ? 0 : partialTagLength(buf, tags);
      emitContent(buf.slice(0, buf.length - keep));
      buf = buf.slice(buf.length - keep);
      return false;
    }
    if (mode === "bare-tool") {
      const i = buf.indexOf(FUNC_CLOSE);
      if (i >= 0) {
        const raw = FUNC_OPEN + buf.slice(0, i + FUNC_CLOSE.length);
        emitCall(raw, raw);
        buf = buf.slice(i + FUNC_CLOSE.length);
        mode = "content";
        return true;
      }
      if (final) {
        emitContent(FUNC_OPEN + buf);
        buf = "";
      }
      return false;
    }
    // tool
    const i = buf.indexOf(CALL_CLOSE);
    if (i >= 0) {
      emitCall(buf.slice(0, i), CALL_OPEN + buf.slice(0, i + CALL_CLOSE.length));
      buf = buf.slice(i + CALL_CLOSE.length);
      mode = "content";
      return true;
    }
    if (final) {
      emitCall(buf, CALL_OPEN + buf); // cut off before </tool_call>: keep it if it parses, else return the text
      buf = "";
    }
    return false;
  };

  return {
    push(text) {
      buf += text;
      while (step(false));
      const out = events;
      events = [];
      return out;
    },
    finish() {
      while (step(false));
      step(true);
      if (nToolCalls === 0) content.flushPending();
      const out = events;
      events = [];
      return out;
    },
    get nToolCalls() {
      return nToolCalls;
    },
  };
}

/** Does the rendered prompt end inside an open <think> block (so the model's output starts as reasoning)? */
export function promptOpensReasoning(prompt: string): boolean {
  const open = prompt.lastIndexOf(THINK_OPEN);
  return open >= 0 && open > prompt.lastIndexOf(THINK_CLOSE) && prompt.slice(open + THINK_OPEN.length).trim() === "";
}
