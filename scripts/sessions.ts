#!/usr/bin/env bun
// List or delete saved chat sessions (both flashchat's and the bash tool's ~/.flashchat/sessions).
//   bun scripts/sessions.ts [--json]
//   bun scripts/sessions.ts --delete chat-1732400000000
import { defineCommand } from "citty";
import { renderSessionTable } from "../lib/chat/session-list.ts";
import { deleteSession, listSessions } from "../lib/chat/sessions.ts";
import { globalArgs, jsonArgs, runScript } from "../lib/cli.ts";
import { loadFlashchatConfig } from "../lib/config/index.ts";
import { logger } from "../lib/log.ts";

const command = defineCommand({
  meta: { name: "sessions", description: "List saved chat sessions, or delete one" },
  args: {
    ...globalArgs,
    ...jsonArgs,
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
