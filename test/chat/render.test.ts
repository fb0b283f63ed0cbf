import { describe, expect, test } from "bun:test";
import { CODE_COLORS } from "../../lib/chat/highlight.ts";
import { ANSI, MarkdownRenderer, stripAnsi } from "../../lib/chat/render.ts";
import { resolveColor } from "../../lib/term.ts";

function render(chunks: string[], color = true, reasoning: string[] = []): string {
  let out = "";
  const r = new MarkdownRenderer({ color, write: (s) => (out += s) });
  for (const c of reasoning) r.writeReasoning(c);
  for (const c of chunks) r.write(c);
  r.end();
  return out;
}

/** Every way of cutting `text` in two, and one character at a time. */
function splits(text: string): string[][] {
  const chars = [...text];
  const out: string[][] = [chars];
  for (let i = 1; i < chars.length; i++) out.push([chars.slice(0, i).join(""), chars.slice(i).join("")]);
  return out;
}

/** Collapse redundant style switches so two renderings of the same text compare by what is shown. */
function shown(s: string): string[] {
  // a list of [style, char] pairs: what a terminal would display
  const cells: string[] = [];
  let style = "";
  const re = /\x1b\[([0-9;]*)m|([\s\S])/gu;
  for (const m of s.matchAll(re)) {
    if (m[1] !== undefined) style = m[1] === "0" ? "" : style + ";" + m[1];
    else cells.push(`${style.split(";").filter(Boolean).sort().join(",")}|${m[2]}`);
  }
  return cells;
}

const SAMPLE = [
  "# Title",
  "Some **bold** and *italic* and `code` and snake_case_name.",
  "",
  "## List",
  "- one **two**",
  "* three",
  "1. first",
  "10) tenth",
  "> quoted *text*",
  "---",
  "```python",
  "def f(x):",
  "    return x * 2  # **not bold**",
  "```",
  "2 * 3 = 6 and a_b_c",
  "see [the docs](https://example.com/x) and [1, 2] or [a] (b)",
  "after",
].join("\n");

describe("markdown rendering", () => {
  test("styles headers, emphasis, code, lists, quotes and rules", () => {
    const out = render([SAMPLE]);
    const plain = stripAnsi(out);
    expect(plain).toBe(
      [
        "Title",
        "Some bold and italic and code and snake_case_name.",
        "",
        "List",
        "• one two",
        "• three",
        "1. first",
        "10) tenth",
        "│ quoted text",
        "─".repeat(40),
        "```python",
        "def f(x):",
        "    return x * 2  # **not bold**",
        "```",
        "2 * 3 = 6 and a_b_c",
        "see the docs (https://example.com/x) and [1, 2] or [a] (b)",
        "after",
        "",
      ].join("\n"),
    );
    expect(out).toContain(`${ANSI.reset}${ANSI.bold}bold`);
    expect(out).toContain(`${ANSI.reset}${ANSI.italic}italic`);
    expect(out).toContain(`${ANSI.reset}${ANSI.code}code`);
    expect(out).toContain(`${ANSI.heading}${ANSI.bold}${ANSI.underline}Title`);
    // python is coloured: keyword, number, and a comment whose ** stays as typed
    expect(out).toContain(`${ANSI.code}    ${CODE_COLORS.keyword}return${CODE_COLORS.reset}${ANSI.code} x * ${CODE_COLORS.number}2`);
    expect(out).toContain(`${CODE_COLORS.comment}# **not bold**`);
    expect(out).toContain(`${ANSI.reset}${ANSI.underline}the docs${ANSI.reset}${ANSI.dim} (https://example.com/x)`);
    expect(out.endsWith(ANSI.reset + "\n") || out.endsWith("\n")).toBe(true);
  });

  test("any split into chunks renders the same as the whole text", () => {
    const whole = shown(render([SAMPLE]));
    for (const chunks of splits(SAMPLE)) expect(shown(render(chunks))).toEqual(whole);
  });

  test("emphasis markers split across chunks", () => {
    expect(render(["a *", "*bo", "ld*", "* b"])).toBe(render(["a **bold** b"]));
    expect(stripAnsi(render(["a *", "*bo", "ld*", "* b"]))).toBe("a bold b\n");
  });

  test("a code fence split across chunks, including its closing line", () => {
    const chunks = ["Here:\n`", "``", "js\nconst a = `x`;\n`", "`", "`\ndone *x*"];
    const out = render(chunks);
    expect(stripAnsi(out)).toBe("Here:\n```js\nconst a = `x`;\n```\ndone x\n");
    expect(out).toContain(`${ANSI.code}${CODE_COLORS.keyword}const${CODE_COLORS.reset}${ANSI.code} a = ${CODE_COLORS.string}\`x\``);
    expect(out).toContain(`${ANSI.italic}x`);
  });

  test("an unclosed fence at the end still flushes everything", () => {
    expect(stripAnsi(render(["```\ncode **x**"]))).toBe("```\ncode **x**\n");
  });

  test("an unfinished link at the end is kept as text", () => {
    expect(stripAnsi(render(["see [the do"]))).toBe("see [the do\n");
    expect(stripAnsi(render(["[x](http://a", "\nnext **b**"]))).toBe("[x](http://a\nnext b\n");
  });

  test("lone markers at the end are kept as text", () => {
    expect(stripAnsi(render(["price: 5 *"]))).toBe("price: 5 *\n");
    expect(stripAnsi(render(["#"]))).toBe(""); // an empty heading shows nothing
    expect(stripAnsi(render(["-"]))).toBe("-\n");
    expect(stripAnsi(render(["12"]))).toBe("12\n");
  });

  test("without colour the text passes through unchanged", () => {
    const out = render(splits(SAMPLE)[5]!, false);
    expect(out).toBe(SAMPLE + "\n");
    expect(out).not.toContain("\x1b");
  });

  test("reasoning is dimmed and separated from the answer", () => {
    const out = render(["The answer."], true, ["Let me ", "think."]);
    expect(out.startsWith(`${ANSI.dim}${ANSI.italic}Let me think.${ANSI.reset}\n\n`)).toBe(true);
    expect(stripAnsi(out)).toBe("Let me think.\n\nThe answer.\n");
    expect(render(["x"], false, ["t"])).toBe("t\n\nx\n");
  });
});

describe("colour choice", () => {
  test("COLOR_OUTPUT, a terminal, and no NO_COLOR", () => {
    expect(resolveColor(true, true, {})).toBe(true);
    expect(resolveColor(false, true, {})).toBe(false);
    expect(resolveColor(true, false, {})).toBe(false);
    expect(resolveColor(true, true, { NO_COLOR: "1" })).toBe(false);
    expect(resolveColor(true, true, { NO_COLOR: "" })).toBe(true);
  });
});

test("one chunk in, at most one write out", () => {
  const writes: string[] = [];
  const r = new MarkdownRenderer({ color: true, write: (s) => writes.push(s) });
  r.write("Some **bold** and `code`\n- item\n");
  expect(writes).toHaveLength(1);
  r.write("*"); // held back: nothing to write yet
  expect(writes).toHaveLength(1);
  r.end();
  expect(writes).toHaveLength(2);
});
