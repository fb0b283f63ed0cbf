// Spawned by sessions.test.ts: start a session at a given time and print its id.
//   bun test/chat/create-fixture.ts DIR UNIX_MS
import { Session } from "../../lib/chat/sessions.ts";

const [dir, now] = process.argv.slice(2);
console.log(Session.create(dir!, { now: Number(now) }).id);
