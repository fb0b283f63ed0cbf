// Sessions as text: the table of `flashchat sessions` and the numbered list of /sessions and the menu.
import type { SessionInfo, SessionMessage } from "./sessions.ts";

/** "2024-11-23 22:13" in local time. */
export function formatTime(iso: string): string {
  const d = new Date(iso);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** One row per session: id, created, turns, first words (legacy ones marked). */
export function renderSessionTable(sessions: readonly SessionInfo[]): string {
  const w = Math.max(2, ...sessions.map((s) => s.id.length));
  const head = `${"ID".padEnd(w)}  CREATED           TURNS  FIRST WORDS\n`;
  return (
    head +
    sessions
      .map((s) => `${s.id.padEnd(w)}  ${formatTime(s.created)}  ${String(s.turns).padStart(5)}  ${s.preview}${s.legacy ? "  (bash tool)" : ""}\n`)
      .join("")
  );
}

/** `[1] chat-1234567890 (5 turns) first words…`, cut to `width` columns. */
export function renderSessionChoices(sessions: readonly SessionInfo[], width = 80): string[] {
  return sessions.map((s, i) => {
    const line = `[${i + 1}] ${s.id} (${plural(s.turns, "turn")}) ${s.preview}`;
    return line.length > width ? `${line.slice(0, width - 1)}…` : line;
  });
}

/** A number from a numbered list or an id: the session id, or undefined when the answer matches nothing. */
export function pickSession(sessions: readonly SessionInfo[], answer: string): string | undefined {
  const a = answer.trim();
  if (/^\d+$/.test(a)) {
    const n = Number(a);
    if (n >= 1 && n <= sessions.length) return sessions[n - 1]!.id;
  }
  const id = a.endsWith(".jsonl") ? a.slice(0, -6) : a;
  return sessions.find((s) => s.id === id)?.id;
}

/** A session's messages as plain text (`sessions --show`): `> ` before yours, [interrupted] after a reply cut short. */
export function renderTranscript(messages: readonly SessionMessage[]): string {
  const out: string[] = [];
  for (const m of messages) {
    if (m.role === "system") out.push(`[system prompt: ${m.content}]`);
    else if (m.role === "user") out.push(`> ${m.content.replace(/\n/g, "\n  ")}`);
    else out.push(`${m.content}${m.interrupted ? `${m.content && !m.content.endsWith("\n") ? "\n" : ""}[interrupted]` : ""}`);
  }
  return out.length ? `${out.join("\n\n")}\n` : "";
}
