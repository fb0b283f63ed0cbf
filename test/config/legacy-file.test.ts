import { describe, expect, test } from "bun:test";
import { parseConfigText, setConfigText, unquoteValue } from "../../lib/config/legacy-file.ts";

describe("the bash tool's KEY=value format", () => {
  test("quotes, comments, blank lines, export and spaces", () => {
    const text = [
      "# flashchat config",
      "",
      'MODEL_REPO="mlx-community/Qwen3.5-397B-A17B-4bit"',
      "MAX_TOKENS=4096",
      "  TEMPERATURE = '0.5'  ",
      "export SERVER_PORT=8100",
      "SERVER_HOST=127.0.0.1 # loopback only",
      'SERVER_LOG_PATH="/var/log/with space # not a comment.log"',
      'TOP_P=""',
      "this is not an assignment",
    ].join("\n");
    const parsed = parseConfigText(text);
    expect(parsed.entries).toEqual([
      { key: "MODEL_REPO", value: "mlx-community/Qwen3.5-397B-A17B-4bit", line: 3 },
      { key: "MAX_TOKENS", value: "4096", line: 4 },
      { key: "TEMPERATURE", value: "0.5", line: 5 },
      { key: "SERVER_PORT", value: "8100", line: 6 },
      { key: "SERVER_HOST", value: "127.0.0.1", line: 7 },
      { key: "SERVER_LOG_PATH", value: "/var/log/with space # not a comment.log", line: 8 },
      { key: "TOP_P", value: "", line: 9 },
    ]);
    expect(parsed.malformed).toEqual([{ line: 10, text: "this is not an assignment" }]);
  });

  test("escapes inside double quotes", () => {
    expect(unquoteValue('"a \\"b\\" \\$c"')).toBe('a "b" $c');
  });

  test("CRLF files parse", () => {
    expect(parseConfigText("A_B=1\r\nC=2\r\n").entries.map((e) => e.value)).toEqual(["1", "2"]);
  });

  test("set replaces the last assignment in place and keeps everything else", () => {
    const before = "# top\nSERVER_PORT=1\n# mid\nexport SERVER_PORT=\"2\" # old\nOTHER=x\n";
    expect(setConfigText(before, "SERVER_PORT", "8080")).toBe('# top\nSERVER_PORT=1\n# mid\nexport SERVER_PORT="8080"\nOTHER=x\n');
  });

  test("set puts a new key under its commented template line, else appends", () => {
    expect(setConfigText('# Port\n# SERVER_PORT="8000"\n\n', "SERVER_PORT", "9")).toBe('# Port\n# SERVER_PORT="8000"\nSERVER_PORT="9"\n\n');
    expect(setConfigText("A=1", "TOP_P", "0.5")).toBe('A=1\nTOP_P="0.5"\n');
    expect(setConfigText("", "TOP_P", 'we"ird$')).toBe('TOP_P="we\\"ird\\$"\n');
  });

  test("a value written by set reads back unchanged", () => {
    for (const v of ["plain", "with space", 'q"uote', "$HOME", "back\\slash", "# hash"]) {
      const parsed = parseConfigText(setConfigText("", "MODEL_PATH", v));
      expect(parsed.entries[0]!.value).toBe(v);
    }
  });
});
