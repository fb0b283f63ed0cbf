// The real server in its own process for the end-to-end benchmark: starts it on the given host/port with the options
// passed as JSON in argv[2], prints one JSON line ({"url"} or {"error"}) on stdout, stops on SIGTERM/SIGINT.
//   bun lib/bench/_e2e-server.ts '{"host":"127.0.0.1","port":0,...ServerOptions}'
import { startServer, type ServerOptions } from "../server/app.ts";

const opts = JSON.parse(process.argv[2] ?? "{}") as ServerOptions;
const server = await startServer(opts);
await server.engineStarted;
if (server.host.state !== "ok") {
  console.log(JSON.stringify({ error: server.host.error ?? `engine ${server.host.state}` }));
  await server.stop(0);
  process.exit(1);
}
console.log(JSON.stringify({ url: server.url, engine: server.host.engine!.ready }));

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await server.stop(2000);
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
