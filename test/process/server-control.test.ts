import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "pathe";
import type { ResolvedConfig } from "../../lib/config/schema.ts";
import { readPidFile, writePidFile } from "../../lib/process/pid-file.ts";
import { findFreePorts, isPortFree } from "../../lib/process/port.ts";
import { isOurServer, isProcessAlive, loadCommandLine } from "../../lib/process/process-info.ts";
import { readServerState, resolveFreePort, stopBackgroundServer } from "../../lib/process/server-control.ts";

const tmp = mkdtempSync(join(tmpdir(), "flashchat-proc-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function listenOn(port = 0): Promise<{ port: number; close: () => void }> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen({ host: "127.0.0.1", port }, () => resolve({ port: (srv.address() as { port: number }).port, close: () => srv.close() }));
  });
}

const config = (port: number, name: string) => ({
  serverHost: "127.0.0.1",
  serverPort: port,
  serverLogPath: join(tmp, name, "logs", "server.log"),
  paths: { pidFile: join(tmp, name, "server.pid") } as { pidFile: string } as ResolvedConfig["paths"],
});

describe("pid file", () => {
  test("JSON round-trip; a bare pid (old tool) and garbage are read", async () => {
    const f = join(tmp, "a.pid");
    writePidFile(f, { pid: 123, port: 8000, host: "127.0.0.1" });
    expect(readPidFile(f)).toEqual({ pid: 123, port: 8000, host: "127.0.0.1" });
    await Bun.write(f, "456\n");
    expect(readPidFile(f)).toEqual({ pid: 456 });
    await Bun.write(f, "{nope");
    expect(readPidFile(f)).toEqual({ pid: 0 });
    expect(readPidFile(join(tmp, "missing.pid"))).toBeUndefined();
  });
});

describe("processes", () => {
  test("alive / command line / ours", async () => {
    expect(isProcessAlive(process.pid)).toBe(true);
    expect(loadCommandLine(process.pid)!.join(" ")).toContain("bun");
    await using sleeper = Bun.spawn(["sleep", "30"]);
    expect(isProcessAlive(sleeper.pid)).toBe(true);
    expect(isOurServer(sleeper.pid)).toBe(false);
    sleeper.kill();
    await sleeper.exited;
    expect(isProcessAlive(sleeper.pid)).toBe(false);
    expect(isProcessAlive(0)).toBe(false);
  });

  // The macOS way (ps -o stat= / command=), checked here too: both sources must agree on every answer.
  for (const via of ["proc", "ps"] as const) {
    test.skipIf(via === "proc" && process.platform !== "linux")(`a zombie is not alive, a live process is, by ${via}`, async () => {
      expect(isProcessAlive(process.pid, via)).toBe(true);
      expect(loadCommandLine(process.pid, via)!.join(" ")).toContain("bun");
      // sh starts a child that exits at once, then becomes `sleep`, which never reaps it: a zombie until sleep ends
      await using parent = Bun.spawn(["sh", "-c", 'sleep 0 & echo $!; exec sleep 30'], { stdout: "pipe" });
      const reader = parent.stdout.getReader();
      const zombie = Number(new TextDecoder().decode((await reader.read()).value).trim());
      reader.releaseLock();
      expect(zombie).toBeGreaterThan(0);
      while (isProcessAlive(zombie, via)) await Bun.sleep(20); // becomes a zombie within moments
      expect(isProcessAlive(parent.pid, via)).toBe(true);
      const seen = Bun.spawnSync(["ps", "-o", "stat=", "-p", String(zombie)]).stdout.toString().trim();
      expect(seen[0]).toBe("Z"); // not alive because it is a zombie, not because it is gone
      parent.kill();
    });
  }
});

describe("ports", () => {
  test("a port in use is detected and the next free ones are suggested", async () => {
    const taken = await listenOn();
    try {
      expect(await isPortFree("127.0.0.1", taken.port)).toBe(false);
      const free = await findFreePorts("127.0.0.1", taken.port, 2);
      expect(free.length).toBe(2);
      expect(free[0]!).toBeGreaterThan(taken.port);
      const e = await resolveFreePort("127.0.0.1", taken.port, { interactive: false }).catch((e) => e);
      expect(e.message).toBe(`port ${taken.port} on 127.0.0.1 is in use`);
      expect(e.hint).toContain(`--port ${free[0]}`);
    } finally {
      taken.close();
    }
  });
});

describe("stop and state", () => {
  test("nothing running: says so truthfully", async () => {
    const { port, close } = await listenOn();
    close();
    const c = config(port, "none");
    expect(await stopBackgroundServer(c)).toEqual({ stopped: false, message: "no server is running" });
    expect(await readServerState(c)).toMatchObject({ running: false, pid: null, healthy: false, stale: false });
  });

  test("a stale pid file (process gone) is detected and removed", async () => {
    const c = config(1, "stale");
    await using p = Bun.spawn(["true"]);
    await p.exited;
    writePidFile(c.paths.pidFile, { pid: p.pid, port: 1 });
    expect((await readServerState(c)).stale).toBe(true);
    const r = await stopBackgroundServer(c);
    expect(r.message).toContain("stale pid file");
    expect(existsSync(c.paths.pidFile)).toBe(false);
  });

  test("a pid reused by another program is never signalled", async () => {
    const c = config(1, "reused");
    await using sleeper = Bun.spawn(["sleep", "30"]);
    writePidFile(c.paths.pidFile, { pid: sleeper.pid, port: 1 });
    const r = await stopBackgroundServer(c);
    expect(r).toEqual({ stopped: false, message: `pid ${sleeper.pid} is not a flashchat server (the pid was reused); left it alone and removed the stale pid file` });
    expect(isProcessAlive(sleeper.pid)).toBe(true);
    expect(existsSync(c.paths.pidFile)).toBe(false);
    sleeper.kill();
  });
});
