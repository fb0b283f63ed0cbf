import { describe, expect, test } from "bun:test";
import { createStopMatcher } from "../../lib/server/stop-strings.ts";

function run(chunks: string[], stops: string[]) {
  const m = createStopMatcher(stops);
  let out = "";
  let stopped = false;
  for (const c of chunks) {
    const r = m.push(c);
    out += r.text;
    if (r.stopped) {
      stopped = true;
      break;
    }
  }
  if (!stopped) out += m.flush();
  return { out, stopped };
}

describe("stop strings", () => {
  const text = "Hello world. END of it\nObservation: x";
  for (const [stops, want] of [
    [["END"], { out: "Hello world. ", stopped: true }],
    [["\nObservation:"], { out: "Hello world. END of it", stopped: true }],
    [["world", "Hello"], { out: "", stopped: true }],
    [["nope", "ENDING"], { out: text, stopped: false }],
    [[], { out: text, stopped: false }],
  ] as const) {
    test(`${JSON.stringify(stops)} at every split`, () => {
      for (let i = 0; i <= text.length; i++)
        for (let j = i; j <= text.length; j += 3) {
          expect(run([text.slice(0, i), text.slice(i, j), text.slice(j)], [...stops])).toEqual(want);
        }
      expect(run(Array.from(text), [...stops])).toEqual(want);
    });
  }

  test("text that could start a stop string is withheld, then released", () => {
    const m = createStopMatcher(["STOP"]);
    expect(m.push("abc ST")).toEqual({ text: "abc ", stopped: false });
    expect(m.push("O")).toEqual({ text: "", stopped: false });
    expect(m.push("RM")).toEqual({ text: "STORM", stopped: false });
    expect(m.push("S")).toEqual({ text: "", stopped: false });
    expect(m.flush()).toBe("S");
  });

  test("after a stop nothing more comes out", () => {
    const m = createStopMatcher(["x"]);
    expect(m.push("axb")).toEqual({ text: "a", stopped: true });
    expect(m.push("more")).toEqual({ text: "", stopped: true });
    expect(m.flush()).toBe("");
  });
});
