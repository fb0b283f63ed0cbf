// Spawned by sessions.test.ts: appends N messages tagged with a writer name to one session file.
//   bun test/chat/append-fixture.ts FILE WRITER N
import { appendRecord } from "../../lib/chat/sessions.ts";

const [path, writer, n] = process.argv.slice(2);
const filler = "x".repeat(3000); // long lines, so a torn write would show
for (let i = 0; i < Number(n); i++) appendRecord(path!, { role: "user", content: `${writer}:${i}:${filler}` });
