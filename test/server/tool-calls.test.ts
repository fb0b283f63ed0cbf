import { describe, expect, test } from "bun:test";
import { parseToolCallBody, type ToolSpec, typeValue } from "../../lib/server/tool-calls.ts";

const tools = new Map<string, ToolSpec>([
  ["f", { name: "f", parameters: { type: "object", properties: { n: { type: "integer" }, x: { type: "number" }, b: { type: "boolean" }, o: { type: "object" }, a: { type: "array" }, s: { type: "string" }, u: { type: ["integer", "null"] } } } }],
]);

describe("tool call bodies", () => {
  test("JSON form: a raw tab or newline inside a string is taken as escaped", () => {
    expect(parseToolCallBody('{"name": "f", "arguments": {"s": "a\tb\nc"}}', tools)).toEqual({ name: "f", arguments: '{"s":"a\\tb\\nc"}' });
  });

  test("JSON form, arguments as object or JSON string", () => {
    expect(parseToolCallBody('\n{"name": "f", "arguments": {"n": 1}}\n', tools)).toEqual({ name: "f", arguments: '{"n":1}' });
    expect(parseToolCallBody('{"name": "f", "arguments": "{\\"n\\": 2}"}', tools)).toEqual({ name: "f", arguments: '{"n":2}' });
    expect(parseToolCallBody('{"name": "f"}', tools)).toEqual({ name: "f", arguments: "{}" });
  });
  test("malformed JSON forms are rejected", () => {
    for (const body of ['{"name": "f", "arguments": {', '{"arguments": {}}', '{"name": "f", "arguments": [1]}', '{"name": "f", "arguments": "not json"}', "plain text"])
      expect(parseToolCallBody(body, tools)).toBeNull();
  });
  test("XML form typed by the schema", () => {
    const body = "\n<function=f>\n<parameter=n>\n42\n</parameter>\n<parameter=x>\n-1.5e3\n</parameter>\n<parameter=b>\nFalse\n</parameter>\n<parameter=o>\n{\"k\": [1]}\n</parameter>\n<parameter=a>\n[1, \"two\"]\n</parameter>\n<parameter=s>\n007\n</parameter>\n<parameter=u>\nnull\n</parameter>\n<parameter=extra>\n12\n</parameter>\n</function>\n";
    expect(JSON.parse(parseToolCallBody(body, tools)!.arguments)).toEqual({ n: 42, x: -1500, b: false, o: { k: [1] }, a: [1, "two"], s: "007", u: null, extra: "12" });
  });
  test("XML values that do not fit the type stay strings", () => {
    expect(typeValue("forty", { type: "integer" })).toBe("forty");
    expect(typeValue("{bad", { type: "object" })).toBe("{bad");
    expect(typeValue("[1]", { type: "object" })).toBe("[1]");
    expect(typeValue("3", { anyOf: [{ type: "integer" }, { type: "string" }] })).toBe(3);
  });
  test("malformed XML forms are rejected", () => {
    for (const body of ["<function=f>\n<parameter=n>\n1\n</function>", "<function=f>\nstray<parameter=n>1</parameter>\n</function>", "<function=>\n</function>", "<function=f>\n<parameter=n>1</parameter>"])
      expect(parseToolCallBody(body, tools)).toBeNull();
  });
});
