#!/usr/bin/env bun
// List or delete saved chat sessions (both flashchat's and the bash tool's ~/.flashchat/sessions).
//   bun scripts/sessions.ts [--json]
//   bun scripts/sessions.ts --show chat-1732400000000 [--json]
//   bun scripts/sessions.ts --delete chat-1732400000000
import { defineCommand } from "citty";
import { renderSessionTable, renderTranscript } from "../lib/chat/session-list.ts";
import { deleteSession, listSessions, loadSession } from "../lib/chat/sessions.ts";
import { globalArgs, jsonArgs, runScript } from "../lib/cli.ts";
import { loadFlashchatConfig } from "../lib/config/index.ts";
import { logger } from "../lib/log.ts";

const command = defineCommand({
  meta: { name: "sessions", description: "List saved chat sessions, show or delete one" },
  args: {
    ...globalArgs,
    ...jsonArgs,
    show: { type: "string", description: "Print this session's conversation (replies cut short marked [interrupted])", valueHint: "ID" },
    delete: { type: "string", description: "Delete this session", valueHint: "ID" },
  },
  async run({ args }) {
    const config = await loadFlashchatConfig({ configFile: args.config });
    const dirs = config.paths;
    if (args.delete !== undefined) {
      const { id, path } = deleteSession(dirs, String(args.delete));
      if (args.json) console.log(JSON.stringify({ deleted: id, path }));
      else logger.success(`deleted session ${id} (${path})`);
      return;
    }
    if (args.show !== undefined) {
      const s = loadSession(dirs, String(args.show));
      for (const w of s.warnings) logger.warn(w);
      if (args.json) console.log(JSON.stringify({ id: s.id, path: s.path, legacy: s.legacy, messages: s.messages }, null, 2));
      else process.stdout.write(renderTranscript(s.messages));
      return;
    }
    const sessions = listSessions(dirs);
    if (args.json) {
      console.log(JSON.stringify(sessions, null, 2));
      return;
    }
    if (sessions.length === 0) {
      logger.info(`no sessions yet (they are kept in ${dirs.sessionsDir})`);
      return;
    }
    process.stdout.write(renderSessionTable(sessions));
  },
});

export default command;
if (import.meta.main) await runScript(command);
