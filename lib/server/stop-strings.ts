// Stop strings over streamed text: text that could still be the start of a stop string is withheld
// until it can no longer match, so a stop spanning token boundaries never reaches the client.

export interface StopMatcher {
  /** Feed new text; returns what is safe to emit and whether a stop string was hit (text after it is dropped). */
  push(text: string): { text: string; stopped: boolean };
  /** End of generation: everything withheld. */
  flush(): string;
}

export function createStopMatcher(stops: readonly string[]): StopMatcher {
  const list = stops.filter((s) => s.length > 0);
  let held = "";
  let stopped = false;
  return {
    push(text) {
      if (stopped) return { text: "", stopped: true };
      if (list.length === 0) return { text, stopped: false };
      const buf = held + text;
      let cut = -1;
      for (const s of list) {
        const i = buf.indexOf(s);
        if (i >= 0 && (cut < 0 || i < cut)) cut = i;
      }
      if (cut >= 0) {
        stopped = true;
        held = "";
        return { text: buf.slice(0, cut), stopped: true };
      }
      // Withhold the longest suffix of buf that is a proper prefix of some stop string.
      let keep = 0;
      for (const s of list) {
        for (let n = Math.min(s.length - 1, buf.length); n > keep; n--) {
          if (buf.endsWith(s.slice(0, n))) {
            keep = n;
            break;
          }
        }
      }
      held = buf.slice(buf.length - keep);
      return { text: buf.slice(0, buf.length - keep), stopped: false };
    },
    flush() {
      const out = stopped ? "" : held;
      held = "";
      return out;
    },
  };
}
