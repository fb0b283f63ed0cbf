// The commented template the user config file is created from on first run.
import { KEYS } from "./schema.ts";

/** Every key commented out with its default and description; `values` become active lines. */
export function renderUserConfigTemplate(values: Record<string, string> = {}): string {
  const out = [
    "# flashchat settings. One KEY=\"value\" per line; lines starting with # are comments.",
    "# Precedence, highest first: command-line flags > FLASHCHAT_<KEY> environment variables >",
    "# --config FILE > ./flashchat.config > this file > built-in defaults.",
    "# `flashchat config` shows every value and where it came from; `flashchat config set KEY VALUE` edits this file.",
    "",
  ];
  for (const k of KEYS) {
    out.push(`# ${k.description}`);
    out.push(`# ${k.key}="${k.default}"`);
    if (k.key in values) out.push(`${k.key}="${values[k.key]}"`);
    out.push("");
  }
  return out.join("\n");
}
