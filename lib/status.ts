// What `flashchat status` reports: model, checkpoint, artifacts, engine build, server, settings, config files.
import { existsSync } from "node:fs";
import type { ResolvedConfig } from "./config/schema.ts";
import { formatBytes, formatDuration, renderTable } from "./format.ts";
import { type ArtifactsStatus, inspectArtifacts } from "./model/artifacts.ts";
import { resolveModelTarget } from "./model/target.ts";
import { loadRssBytes } from "./process/process-info.ts";
import { readServerState, type ServerState } from "./process/server-control.ts";
import { inspectEngine } from "./setup/engine.ts";
import { timeStep } from "./log.ts";

export interface Status {
  /** chosenBy: where MODEL_REPO came from ("default", "the model set up here (demo)", a file:line, a flag). */
  model: { id: string; kind: string; repo: string; checkpointDir: string; checkpointPresent: boolean; known: boolean; chosenBy: string };
  artifacts: ArtifactsStatus & { expertsDirInUse: string };
  engine: { binary: string; built: boolean; current: boolean };
  server: ServerState;
  /** What the running server has loaded (like `ollama ps`); null when no server runs. */
  loaded: LoadedModel | null;
  settings: { quantization: string; maxTokens: number; temperature: number; topP: number; activeExperts: number | null; threads: number | null; showThinking: boolean };
  config: { filesRead: string[]; userConfigFile: string };
}

export interface LoadedModel {
  model: string | null;
  artifactsDir: string | null;
  /** Context length the engine runs with; null while it loads. */
  context: number | null;
  /** The server process and its engine child. */
  pid: number | null;
  enginePid: number | null;
  port: number;
  uptimeS: number | null;
  /** Resident memory of the server plus the engine (bytes); null when it cannot be read. */
  memoryBytes: number | null;
  /** /health status: ok, loading, stalled, restarting, error; "unloaded" when KEEP_ALIVE unloaded the model. */
  status: string | null;
}

/** The running server's model, context, pids, port, uptime and memory (RSS of server + engine). */
export function resolveLoadedModel(server: ServerState): LoadedModel | null {
  if (!server.running) return null;
  const rss = [server.pid, server.enginePid ?? null].filter((p): p is number => p !== null).map((p) => loadRssBytes(p));
  return {
    model: server.model ?? null,
    artifactsDir: server.artifactsDir ?? null,
    context: server.context ?? null,
    pid: server.pid,
    enginePid: server.enginePid ?? null,
    port: server.port,
    uptimeS: server.uptimeS ?? null,
    memoryBytes: rss.length && rss.every((b) => b !== undefined) ? rss.reduce((a, b) => a! + b!, 0)! : null,
    status: server.unloaded ? "unloaded" : (server.status ?? null),
  };
}

/** The loaded model as `ollama ps` shows it: one head line and one row. */
export function renderLoadedModel(l: LoadedModel): string {
  return renderTable(
    [[l.model ?? "?", l.context === null ? (l.status ?? "?") : String(l.context), l.pid === null ? "?" : `${l.pid}${l.enginePid ? ` (engine ${l.enginePid})` : ""}`, String(l.port), l.uptimeS === null ? "?" : formatDuration(l.uptimeS), l.memoryBytes === null ? "?" : formatBytes(l.memoryBytes)]],
    { head: ["MODEL", "CONTEXT", "PID", "PORT", "UPTIME", "MEMORY"] },
  );
}

export async function loadStatus(config: ResolvedConfig): Promise<Status> {
  const target = resolveModelTarget(config);
  const engine = await timeStep((e) => `engine: ${e.built ? (e.current ? "built, up to date" : "built, out of date") : "not built"}`, () => inspectEngine());
  const server = await timeStep((st) => `server: ${st.running ? `running at ${st.url}` : "not running"}`, () => readServerState(config));
  return {
    model: {
      id: target.id,
      kind: target.kind,
      repo: target.repo,
      checkpointDir: target.checkpointDir,
      checkpointPresent: target.checkpointDir !== "" && existsSync(target.checkpointDir),
      known: target.entry !== undefined,
      chosenBy: config.sources.MODEL_REPO?.where ?? "default",
    },
    artifacts: { ...inspectArtifacts(target.artifactsDir), expertsDirInUse: target.expertsDir },
    engine: { binary: engine.binary, built: engine.built, current: engine.current },
    server,
    loaded: resolveLoadedModel(server),
    settings: {
      quantization: config.quantization,
      maxTokens: target.maxTokens,
      temperature: config.temperature,
      topP: config.topP,
      activeExperts: target.activeExperts,
      threads: config.threads,
      showThinking: config.showThinking,
    },
    config: { filesRead: config.filesRead, userConfigFile: config.paths.userConfigFile },
  };
}

const yesNo = (b: boolean) => (b ? "yes" : "no");

export function renderStatus(s: Status): string {
  const a = s.artifacts;
  const experts = (e: ArtifactsStatus["experts"]) =>
    e.layersPresent.length === 0
      ? "none"
      : `${e.layersPresent.length}/${e.layersExpected || "?"} layers, ${formatBytes(e.bytes)}${e.complete ? "" : " (incomplete)"}${e.layersBad.length ? `, ${e.layersBad.length} damaged` : ""}`;
  const srv = s.server;
  const server = srv.running
    ? `running at ${srv.url} (pid ${srv.pid ?? "?"}, ${srv.healthy ? "healthy" : srv.status ?? "not answering"})`
    : `not running${srv.stale ? " (stale pid file)" : ""}`;
  const lines = [
    ["model", `${s.model.id}${s.model.known ? "" : " (not in the registry)"}${s.model.chosenBy.startsWith("the model set up") ? " (no MODEL_REPO configured: the model set up here)" : ""}`],
    ["checkpoint", s.model.checkpointDir ? `${s.model.checkpointDir} (${s.model.checkpointPresent ? "present" : "missing"})` : "not downloaded"],
    ["artifacts", `${a.dir}${a.exists ? "" : " (not prepared)"}`],
    ["  weights", a.weights.present ? `${formatBytes(a.weights.bytes)}${a.weightsComplete ? "" : " (incomplete)"}` : "missing"],
    ["  manifest", a.manifest.present ? (a.manifest.valid ? `${a.manifest.tensors} tensors, ${a.manifest.sourceFormat ?? "?"}` : "unreadable") : "missing"],
    ["  experts", experts(a.experts)],
    ["  experts 2-bit", experts(a.experts2bit)],
    ["engine", `${s.engine.built ? (s.engine.current ? "built" : "built, older than its sources (make engine)") : "not built (make engine)"}`],
    ["server", server],
    [
      "generation",
      `quantization ${s.settings.quantization}, max tokens ${s.settings.maxTokens}, temperature ${s.settings.temperature}, top-p ${s.settings.topP}, active experts ${s.settings.activeExperts ?? "model's own"}, threads ${s.settings.threads ?? "all cores"}`,
    ],
    ["config files", s.config.filesRead.length ? s.config.filesRead.join(", ") : "none"],
  ];
  const table = renderTable(lines);
  return s.loaded ? `${table}\n\nloaded by the server:\n${renderLoadedModel(s.loaded)}` : table;
}
