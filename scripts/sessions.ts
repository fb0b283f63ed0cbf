#!/usr/bin/env bun
// List or delete saved chat sessions (both flashchat's and the bash tool's ~/.flashchat/sessions).
//   bun scripts/sessions.ts [--json]
//   bun scripts/sessions.ts --show chat-1732400000000 [--json]
//   bun scripts/sessions.ts --delete chat-1732400000000      bun scripts/sessions.ts rm 1      bun scripts/sessions.ts show 2
import { defineCommand } from "citty";
import { renderSessionTable, renderTranscript } from "../lib/chat/session-list.ts";
import { deleteSession, listSessions, loadSession, sessionRef } from "../lib/chat/sessions.ts";
import { globalArgs, jsonArgs, runScript } from "../lib/cli.ts";
import { closest } from "../lib/config/validate.ts";
import { UserError } from "../lib/errors.ts";
import { loadFlashchatConfig } from "../lib/config/index.ts";
import { logger } from "../lib/log.ts";

const command = defineCommand({
  meta: { name: "sessions", description: "List saved chat sessions, show or delete one" },
  args: {
    action: { type: "positional", required: false, description: "list | show | delete (rm) — none: list", valueHint: "ACTION" },
    session: { type: "positional", required: false, description: "A session: the number `sessions` shows or its id", valueHint: "N|ID" },
    ...globalArgs,
    ...jsonArgs,
    show: { type: "string", description: "Print this session's conversation (replies cut short marked [interrupted])", valueHint: "ID" },
    delete: { type: "string", description: "Delete this session", valueHint: "ID" },
  },
  async run({ args }) {
    const config = await loadFlashchatConfig({ configFile: args.config });
    const dirs = config.paths;
    const action = args.action?.toLowerCase();
    const ACTIONS = ["list", "ls", "show", "delete", "rm"];
    if (action !== undefined && !ACTIONS.includes(action)) {
      const near = closest(action, ACTIONS);
      throw new UserError(`unknown sessions action "${args.action}"${near ? ` — did you mean "${near}"?` : ""}`, "usage: flashchat sessions [list | show N|ID | delete N|ID]", 2);
    }
    if ((action === "show" || action === "delete" || action === "rm") && !args.session) throw new UserError(`sessions ${action} needs a session`, `usage: flashchat sessions ${action} N|ID (the numbers \`flashchat sessions\` shows)`, 2);
    if ((action === undefined || action === "list" || action === "ls") && args.session) throw new UserError(`unexpected argument: ${args.session}`, "usage: flashchat sessions [list | show N|ID | delete N|ID]", 2);
    const toDelete = action === "delete" || action === "rm" ? args.session : args.delete;
    const toShow = action === "show" ? args.session : args.show;
    if (toDelete !== undefined) {
      const { id, path } = deleteSession(dirs, sessionRef(dirs, String(toDelete)));
      if (args.json) console.log(JSON.stringify({ deleted: id, path }));
      else logger.success(`deleted session ${id} (${path})`);
      return;
    }
    if (toShow !== undefined) {
      const s = loadSession(dirs, sessionRef(dirs, String(toShow), { prefix: true }));
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
