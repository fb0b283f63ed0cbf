// Port probing: is HOST:PORT free to listen on, and which ports after it are.
import { createServer } from "node:net";

export function isPortFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** The first `n` free ports after `port` (port+1, port+2, …). */
export async function findFreePorts(host: string, port: number, n = 3): Promise<number[]> {
  const out: number[] = [];
  for (let p = port + 1; p <= 65535 && out.length < n && p < port + 200; p++) if (await isPortFree(host, p)) out.push(p);
  return out;
}
