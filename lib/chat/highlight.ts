// Syntax colours for code blocks in chat, one line at a time (replies stream): keywords, strings, comments,
// numbers and constants of the common languages, with block comments and multi-line strings carried from line
// to line. Small and hand-written: the maintained highlighters cost more to load than a chat can wait (RUN.md).

export interface CodeColors {
  keyword: string;
  string: string;
  comment: string;
  number: string;
  constant: string;
  plain: string;
  reset: string;
}

export const CODE_COLORS: CodeColors = {
  keyword: "\x1b[35m",
  string: "\x1b[32m",
  comment: "\x1b[2;37m",
  number: "\x1b[33m",
  constant: "\x1b[33m",
  plain: "\x1b[36m",
  reset: "\x1b[0m",
};

interface LanguageSpec {
  keywords: ReadonlySet<string>;
  constants: ReadonlySet<string>;
  lineComment: readonly string[];
  /** [open, close] pairs that may span lines: block comments and multi-line strings. */
  blocks: readonly { open: string; close: string; kind: "comment" | "string" }[];
  quotes: string;
}

const words = (s: string) => new Set(s.split(/\s+/).filter(Boolean));

const C_LIKE_BLOCKS = [{ open: "/*", close: "*/", kind: "comment" as const }];
const JS_KEYWORDS =
  "as async await break case catch class const continue debugger default delete do else enum export extends finally for from function get if implements import in instanceof interface let new of package private protected public readonly return satisfies set static super switch this throw try type typeof var void while with yield declare keyof namespace abstract";

const LANGUAGES: Record<string, LanguageSpec> = {
  js: { keywords: words(JS_KEYWORDS), constants: words("true false null undefined NaN Infinity"), lineComment: ["//"], blocks: [...C_LIKE_BLOCKS, { open: "`", close: "`", kind: "string" }], quotes: "\"'" },
  python: {
    keywords: words("and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case print self"),
    constants: words("True False None"),
    lineComment: ["#"],
    blocks: [
      { open: '"""', close: '"""', kind: "string" },
      { open: "'''", close: "'''", kind: "string" },
    ],
    quotes: "\"'",
  },
  sh: {
    keywords: words("if then else elif fi for while until do done case esac in function return local export readonly set unset echo cd exit source alias shift trap eval exec"),
    constants: words("true false"),
    lineComment: ["#"],
    blocks: [],
    quotes: "\"'",
  },
  c: {
    keywords: words(
      "auto break case char const continue default do double else enum extern float for goto if inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while bool class namespace template typename public private protected virtual override new delete using try catch throw constexpr nullptr include define ifdef ifndef endif pragma size_t uint8_t uint16_t uint32_t uint64_t int8_t int16_t int32_t int64_t",
    ),
    constants: words("true false NULL nullptr"),
    lineComment: ["//"],
    blocks: C_LIKE_BLOCKS,
    quotes: "\"'",
  },
  rust: {
    keywords: words("as async await break const continue crate dyn else enum extern fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait type unsafe use where while"),
    constants: words("true false None Some Ok Err"),
    lineComment: ["//"],
    blocks: C_LIKE_BLOCKS,
    quotes: '"',
  },
  go: {
    keywords: words("break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var"),
    constants: words("true false nil iota"),
    lineComment: ["//"],
    blocks: [...C_LIKE_BLOCKS, { open: "`", close: "`", kind: "string" }],
    quotes: "\"'",
  },
  java: {
    keywords: words("abstract assert boolean break byte case catch char class const continue default do double else enum extends final finally float for if implements import instanceof int interface long native new package private protected public return short static super switch synchronized this throw throws try void volatile while var fun val when object"),
    constants: words("true false null"),
    lineComment: ["//"],
    blocks: C_LIKE_BLOCKS,
    quotes: "\"'",
  },
  json: { keywords: new Set(), constants: words("true false null"), lineComment: [], blocks: [], quotes: '"' },
};

const ALIASES: Record<string, string> = {
  javascript: "js", jsx: "js", mjs: "js", cjs: "js", ts: "js", typescript: "js", tsx: "js", node: "js",
  py: "python", python3: "python",
  bash: "sh", shell: "sh", zsh: "sh", console: "sh", shellscript: "sh",
  h: "c", cpp: "c", "c++": "c", cc: "c", hpp: "c", cxx: "c", objc: "c", "objective-c": "c", metal: "c", cuda: "c",
  rs: "rust", golang: "go", kotlin: "java", kt: "java", scala: "java", "c#": "java", cs: "java", csharp: "java", swift: "java",
  jsonc: "json", json5: "json",
};

/** The language a fence's info string names ("```ts title=x" -> js), undefined when it is not one we colour. */
export function resolveLanguage(info: string): string | undefined {
  const name = info.trim().split(/[\s{,]/)[0]!.toLowerCase();
  if (!name) return undefined;
  const id = ALIASES[name] ?? name;
  return id in LANGUAGES ? id : undefined;
}

/** Colours the lines of one code block in order (state: an open block comment or multi-line string). */
export class LineHighlighter {
  private readonly spec: LanguageSpec;
  private open?: LanguageSpec["blocks"][number];

  constructor(
    language: string,
    private readonly colors: CodeColors = CODE_COLORS,
  ) {
    this.spec = LANGUAGES[language]!;
  }

  /** One line (no newline) with colours, written in the plain code colour (returned to after each coloured part). */
  line(text: string): string {
    const { spec, colors } = this;
    let out = "";
    let i = 0;
    const paint = (s: string, color: string) => {
      if (s) out += color + s + colors.reset + colors.plain;
    };
    while (i < text.length) {
      if (this.open) {
        const end = text.indexOf(this.open.close, i);
        const color = this.open.kind === "comment" ? colors.comment : colors.string;
        if (end < 0) {
          paint(text.slice(i), color);
          return out;
        }
        paint(text.slice(i, end + this.open.close.length), color);
        i = end + this.open.close.length;
        this.open = undefined;
        continue;
      }
      const rest = text.slice(i);
      // `#` starts a comment only at a word boundary (`$#`, `a#b` in shell are not comments)
      if (spec.lineComment.some((c) => rest.startsWith(c) && (c !== "#" || i === 0 || /\s/.test(text[i - 1]!)))) {
        paint(rest, colors.comment);
        return out;
      }
      const block = spec.blocks.find((b) => rest.startsWith(b.open));
      if (block) {
        const end = text.indexOf(block.close, i + block.open.length);
        const color = block.kind === "comment" ? colors.comment : colors.string;
        if (end < 0) {
          this.open = block; // carried to the next lines
          paint(rest, color);
          return out;
        }
        paint(text.slice(i, end + block.close.length), color);
        i = end + block.close.length;
        continue;
      }
      const ch = text[i]!;
      if (spec.quotes.includes(ch)) {
        let j = i + 1;
        while (j < text.length && text[j] !== ch) j += text[j] === "\\" ? 2 : 1;
        paint(text.slice(i, Math.min(j + 1, text.length)), colors.string);
        i = j + 1;
        continue;
      }
      const num = /^(0[xX][0-9a-fA-F_]+|0[bB][01_]+|\d[\d_]*(\.\d+)?([eE][+-]?\d+)?)[a-zA-Z]*/.exec(rest);
      if (num && !/[\w$]/.test(text[i - 1] ?? "")) {
        paint(num[0], colors.number);
        i += num[0].length;
        continue;
      }
      const word = /^[A-Za-z_$][\w$]*/.exec(rest);
      if (word) {
        const w = word[0];
        if (spec.keywords.has(w)) paint(w, colors.keyword);
        else if (spec.constants.has(w)) paint(w, colors.constant);
        else out += w;
        i += w.length;
        continue;
      }
      out += ch;
      i++;
    }
    return out;
  }
}
