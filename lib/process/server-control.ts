// Background server control for `flashchat serve` / `serve --stop` / `status`: start scripts/serve.ts detached,
// pid file, wait for /health with a spinner, stop only our own process, detect stale pid files, pick free ports.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { dirname, join } from "pathe";
import type { ResolvedConfig } from "../config/schema.ts";
import { loadHealth } from "../client/api.ts";
import { UserError } from "../errors.ts";
import { elapsedMs, logStep, say as sayStatus } from "../log.ts";
import { serverUrl } from "../net.ts";
import { createSpinner } from "../progress.ts";
import { scriptArgv } from "../scripts.ts";
import { isInteractive } from "../term.ts";
import { readPidFile, removePidFile, writePidFile } from "./pid-file.ts";
import { findFreePorts, isPortFree } from "./port.ts";
import { isOurServer, isProcessAlive, SERVER_MARKER, waitForExit } from "./process-info.ts";

export interface ServerState {
  /** A flashchat server answers (our background process, or one started in the foreground). */
  running: boolean;
  /** pid of our background server (pid file) or, failing that, the pid /health reports. */
  pid: number | null;
  port: number;
  /** /health said ok. */
  healthy: boolean;
  /** A pid file exists but its process is gone or is not our server. */
  stale: boolean;
  /** /health status ("ok", "loading", "error") when something answered. */
  status?: string;
  /** The model /health names. */
  model?: string;
  /** Its artifacts folder (/health artifacts_dir): what identifies the loaded model. */
  artifactsDir?: string;
  /** Context length the engine runs with (once loaded). */
  context?: number;
  /** pid of the engine child (once loaded). */
  enginePid?: number;
  /** KEEP_ALIVE unloaded the model (the next request loads it again). */
  unloaded?: boolean;
  /** When the server started (ISO time) and how long ago, in seconds. */
  startedAt?: string;
  uptimeS?: number;
  url: string;
}

type ServerConfig = Pick<ResolvedConfig, "serverHost" | "serverPort" | "serverLogPath" | "paths">;

/** What `status` shows: is a server running, is it ours, is it healthy, is the pid file stale. */
export async function readServerState(config: ServerConfig): Promise<ServerState> {
  const info = readPidFile(config.paths.pidFile);
  const ours = info && isOurServer(info.pid) ? info : undefined;
  const port = ours?.port ?? config.serverPort;
  const url = serverUrl(ours?.host ?? config.serverHost, port);
  const health = await loadHealth(url, 1500);
  const healthPid = typeof health?.pid === "number" ? health.pid : null;
  return {
    running: !!ours || !!health,
    pid: ours?.pid ?? healthPid,
    port,
    healthy: health?.status === "ok",
    stale: !!info && !ours,
    status: health ? String(health.status) : undefined,
    model: typeof health?.model === "string" ? health.model : undefined,
    artifactsDir: typeof health?.artifacts_dir === "string" ? health.artifacts_dir : undefined,
    context: typeof health?.context_length === "number" ? health.context_length : undefined,
    enginePid: typeof (health?.engine as { pid?: unknown } | undefined)?.pid === "number" ? (health!.engine as { pid: number }).pid : undefined,
    unloaded: health?.unloaded === true ? true : undefined,
    startedAt: typeof health?.started_at === "string" ? health.started_at : undefined,
    uptimeS: typeof health?.uptime_s === "number" ? health.uptime_s : undefined,
    url,
  };
}

/**
 * Make sure `port` is free. When it is taken: on a terminal, offer the next free ports; otherwise fail,
 * naming them. Returns the port to use.
 */
export async function resolveFreePort(host: string, port: number, opts: { interactive?: boolean } = {}): Promise<number> {
  if (await isPortFree(host, port)) return port;
  const free = await findFreePorts(host, port, 3);
  const list = free.join(", ");
  if (opts.interactive ?? isInteractive()) {
    const { consola } = await import("consola");
    const choice = await consola.prompt(`port ${port} is in use. Use another?`, {
      type: "select",
      options: [...free.map((p) => ({ label: `port ${p}`, value: String(p) })), { label: "cancel", value: "cancel" }],
      cancel: "symbol",
    });
    if (typeof choice === "string" && choice !== "cancel") return Number(choice);
    throw new UserError(`port ${port} is in use`, free.length ? `free ports: ${list}; use --port ${free[0]}` : undefined);
  }
  throw new UserError(`port ${port} on ${host} is in use`, free.length ? `free ports: ${list}; run again with --port ${free[0]}` : "pick another port with --port N");
}

const tailLines = (file: string, n: number) =>
  existsSync(file) ? readFileSync(file, "utf8").trimEnd().split("\n").slice(-n).join("\n") : "";

export interface BackgroundStartOptions {
  host: string;
  port: number;
  /** Args passed on to scripts/serve.ts (--model, --config, --insecure …), besides --port/--host. */
  forwardArgs?: string[];
  /** Give up waiting for /health after this long (default 15 minutes: a big model loads slowly). */
  timeoutMs?: number;
  /** Status lines (default stderr). */
  say?: (line: string) => void;
  /** Environment of the server process (default this process's). */
  env?: Record<string, string | undefined>;
  /** Bun binary (default the running one). */
  bun?: string;
  /** The user asked for this port (--port): a server running on another one is an error, not "already running". */
  strictPort?: boolean;
}

export interface BackgroundServer {
  pid: number;
  port: number;
  url: string;
  /** false: one was already running. */
  started: boolean;
}

/** `flashchat serve`: start the server in the background and return once /health says ok. */
export async function startServerInBackground(config: ServerConfig, opts: BackgroundStartOptions): Promise<BackgroundServer> {
  const say = opts.say ?? sayStatus;
  const started = elapsedMs();
  const pidFile = config.paths.pidFile;
  const state = await readServerState(config);
  if (state.stale) {
    removePidFile(pidFile);
    say(`removed a stale pid file (${pidFile})`);
  }
  if (state.running && !state.stale && state.pid && readPidFile(pidFile)) {
    if (opts.strictPort && state.port !== opts.port)
      throw new UserError(
        `the server is already running on port ${state.port} (pid ${state.pid}), not ${opts.port}`,
        `to move it: flashchat serve --stop && flashchat serve --port ${opts.port}`,
      );
    say(`the server is already running at ${state.url} (pid ${state.pid}${state.healthy ? "" : `, ${state.status ?? "not answering"}`})`);
    return { pid: state.pid, port: state.port, url: state.url, started: false };
  }
  if (state.status !== undefined && state.port === opts.port) {
    // a flashchat server started in the foreground (no pid file) already answers on this port
    say(`a flashchat server already answers at ${state.url}${state.pid ? ` (pid ${state.pid}, started in the foreground)` : ""}`);
    return { pid: state.pid ?? 0, port: state.port, url: state.url, started: false };
  }
  const port = await resolveFreePort(opts.host, opts.port);
  const logFile = config.serverLogPath;
  mkdirSync(dirname(logFile), { recursive: true, mode: 0o700 });
  const fd = openSync(logFile, "a", 0o600);
  const argv = scriptArgv("serve", [SERVER_MARKER, "--port", String(port), "--host", opts.host, ...(opts.forwardArgs ?? [])], opts.bun);
  const child = Bun.spawn(argv, { stdin: "ignore", stdout: fd, stderr: fd, detached: true, env: { ...(opts.env ?? process.env) } as Record<string, string> });
  closeSync(fd);
  child.unref();
  const url = serverUrl(opts.host, port);
  writePidFile(pidFile, { pid: child.pid, port, host: opts.host, logFile, startedAt: new Date().toISOString() });
  logStep(`server: started pid ${child.pid} on ${url}, waiting for it to load the model (log: ${logFile})`, started);

  const spinner = createSpinner(`starting the server on ${url} (loading the model)…`, { elapsed: true, plainLine: true });
  const deadline = Date.now() + (opts.timeoutMs ?? 15 * 60_000);
  let exitCode: number | null = null;
  void child.exited.then((c) => {
    exitCode = c;
  });
  try {
    while (true) {
      if (exitCode !== null || !isProcessAlive(child.pid)) {
        removePidFile(pidFile);
        const tail = tailLines(logFile, 5);
        throw new UserError(`the server failed to start (exit ${exitCode ?? "?"})${tail ? `:\n${tail}` : ""}`, `see the log: ${logFile}`);
      }
      const health = await loadHealth(url, 1000);
      if (health?.status === "ok" && health.pid === child.pid) break;
      if (health?.status === "error") {
        await stopPid(child.pid, 5000);
        removePidFile(pidFile);
        throw new UserError(`the engine failed to load: ${String(health.error ?? "unknown error")}`, `see the log: ${logFile}`);
      }
      if (Date.now() > deadline) {
        await stopPid(child.pid, 5000);
        removePidFile(pidFile);
        throw new UserError(`the server did not become ready in ${Math.round((opts.timeoutMs ?? 15 * 60_000) / 1000)}s`, `see the log: ${logFile}`);
      }
      await Bun.sleep(200);
    }
  } finally {
    spinner.stop();
  }
  logStep("server: ready (engine loaded)", started);
  say(`the server is running at ${url} (pid ${child.pid}); log: ${logFile}`);
  return { pid: child.pid, port, url, started: true };
}

/** SIGTERM, wait, SIGKILL after `timeoutMs`, wait. Returns how it ended. */
async function stopPid(pid: number, timeoutMs: number): Promise<"terminated" | "killed" | "gone"> {
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return "gone";
  }
  if (await waitForExit(pid, timeoutMs)) return "terminated";
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    return "gone";
  }
  await waitForExit(pid, 5000);
  return "killed";
}

export interface StopResult {
  /** What happened, for the user. */
  message: string;
  stopped: boolean;
}

/** `flashchat serve --stop`: stop our background server (never anything else), then remove the pid file. */
export async function stopBackgroundServer(config: ServerConfig, opts: { timeoutMs?: number } = {}): Promise<StopResult> {
  const pidFile = config.paths.pidFile;
  const info = readPidFile(pidFile);
  if (!info) {
    const health = await loadHealth(serverUrl(config.serverHost, config.serverPort));
    if (health)
      return {
        stopped: false,
        message: `no background server to stop (no pid file); a server started in the foreground answers on port ${config.serverPort}${typeof health.pid === "number" ? ` (pid ${health.pid})` : ""}: stop it where it runs (Ctrl-C)`,
      };
    return { stopped: false, message: "no server is running" };
  }
  if (!isProcessAlive(info.pid)) {
    removePidFile(pidFile);
    return { stopped: false, message: `no server was running (removed a stale pid file for pid ${info.pid})` };
  }
  if (!isOurServer(info.pid)) {
    removePidFile(pidFile);
    return { stopped: false, message: `pid ${info.pid} is not a flashchat server (the pid was reused); left it alone and removed the stale pid file` };
  }
  const how = await stopPid(info.pid, opts.timeoutMs ?? 20_000);
  removePidFile(pidFile);
  return {
    stopped: true,
    message: how === "killed" ? `the server (pid ${info.pid}) did not stop in time and was killed` : `stopped the server (pid ${info.pid})`,
  };
}
