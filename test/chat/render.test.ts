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

describe("layout for the terminal width", () => {
  const renderAt = (chunks: string[], width: number, color: boolean) => {
    let out = "";
    const r = new MarkdownRenderer({ color, width, write: (s) => (out += s) });
    for (const c of chunks) r.write(c);
    r.end();
    return out;
  };
  const PROSE = "The quick brown fox jumps over the lazy dog while the band plays on, and nobody minds the noise at all.";
  const LAYOUT = [
    "Intro line that is long enough to be wrapped at least once at the chosen width.",
    "",
    "| Model | Size | Notes |",
    "|:------|-----:|:-----:|",
    "| **qwen3.5-397b** | 209 GB | the big one, streams its experts from the disk while it runs |",
    "| `demo` | 60 MB | random weights |",
    "",
    "- a list item long enough that it has to continue on the next line of the terminal",
    "```python",
    "def f(x):  # a very long comment line that must not be re-wrapped by the word wrapper at all",
    "    return 'x'",
    "```",
    "after",
  ].join("\n");

  test("words are never split: each line fits, and joining the lines gives the text back", () => {
    for (const width of [20, 33, 50]) {
      const out = renderAt([PROSE], width, false);
      const lines = out.trimEnd().split("\n");
      for (const l of lines) expect(Bun.stringWidth(l)).toBeLessThanOrEqual(width);
      expect(lines.length).toBeGreaterThan(1);
      expect(lines.join(" ")).toBe(PROSE);
    }
  });

  test("a word longer than the line is cut at the edge; a list item keeps its indent when it wraps", () => {
    const long = "x".repeat(50);
    const out = renderAt([`see ${long} end`], 20, false);
    expect(out).toBe(`see\n${"x".repeat(20)}\n${"x".repeat(20)}\n${"x".repeat(10)} end\n`);
    const item = stripAnsi(renderAt(["- one two three four five six seven\n"], 20, true));
    expect(item).toBe("• one two three four\n  five six seven\n");
  });

  test("a table is drawn aligned, no wider than the terminal; cells wrap inside their column", () => {
    for (const color of [true, false]) {
      const out = stripAnsi(renderAt([LAYOUT], 60, color));
      const table = out.split("\n").filter((l) => /^[┌│├└]/.test(l));
      expect(table[0]).toStartWith("┌");
      for (const l of table) expect(Bun.stringWidth(l)).toBe(Bun.stringWidth(table[0]!)); // every row as wide
      expect(Bun.stringWidth(table[0]!)).toBeLessThanOrEqual(60);
      expect(table.some((l) => l.includes("│ qwen3.5-397b │ 209 GB │"))).toBe(true); // bold markers gone, size right-aligned
      expect(table.some((l) => /│ demo\s+│\s+60 MB │/.test(l))).toBe(true);
      expect(table.length).toBeGreaterThan(6); // the long note took more than one line
      expect(out).not.toContain("|---");
      // the code line is longer than the width and kept whole
      expect(out).toContain("def f(x):  # a very long comment line that must not be re-wrapped by the word wrapper at all\n");
      expect(out).toContain("• a list item long enough that it has to continue on the\n  next line of the terminal\n".replace("• ", color ? "• " : "- "));
    }
  });

  test("any split into chunks renders the same as the whole text, with a width", () => {
    for (const color of [true, false]) {
      const whole = renderAt([LAYOUT], 44, color);
      const chars = [...LAYOUT];
      for (const size of [1, 2, 3, 7, 16]) {
        const chunks: string[] = [];
        for (let i = 0; i < chars.length; i += size) chunks.push(chars.slice(i, i + size).join(""));
        expect(color ? shown(renderAt(chunks, 44, color)) : [renderAt(chunks, 44, color)]).toEqual(color ? shown(whole) : [whole]);
      }
    }
  });

  test("not a table after all: lines starting with | are kept as text", () => {
    const text = "| just a pipe line\nand more\n";
    expect(renderAt([text], 60, false)).toBe(text);
    expect(stripAnsi(renderAt([text], 60, true))).toBe(text);
  });

  test("code is coloured by language with colour on, never with it off; unknown languages stay one colour", () => {
    const code = "```ts\nconst n = 42; // note\nlet s = \"hi\";\n```\n";
    const on = renderAt([code], 80, true);
    expect(on).toContain(`${CODE_COLORS.keyword}const`);
    expect(on).toContain(`${CODE_COLORS.number}42`);
    expect(on).toContain(`${CODE_COLORS.comment}// note`);
    expect(on).toContain(`${CODE_COLORS.string}"hi"`);
    expect(renderAt([code], 80, false)).toBe(code);
    const unknown = renderAt(["```brainfuck\nconst 42\n```\n"], 80, true);
    expect(unknown).not.toContain(CODE_COLORS.keyword);
    expect(unknown).toContain(`${ANSI.code}const 42`);
  });

  test("a block comment and a multi-line string carry over to the next lines", () => {
    const out = renderAt(["```c\nint a; /* one\ntwo */ int b;\n```\n```python\ns = \"\"\"doc\nstill doc\"\"\"\n```\n"], 80, true);
    expect(out).toContain(`${CODE_COLORS.comment}two */`);
    expect(out).toContain(`${CODE_COLORS.keyword}int${CODE_COLORS.reset}${ANSI.code} b`);
    expect(out).toContain(`${CODE_COLORS.string}still doc"""`);
  });
});
