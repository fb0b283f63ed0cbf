// What `flashchat status` reports: model, checkpoint, artifacts, engine build, server, settings, config files.
import { existsSync } from "node:fs";
import type { ResolvedConfig } from "./config/schema.ts";
import { formatBytes, renderTable } from "./format.ts";
import { type ArtifactsStatus, inspectArtifacts } from "./model/artifacts.ts";
import { resolveModelTarget } from "./model/target.ts";
import { readServerState, type ServerState } from "./process/server-control.ts";
import { inspectEngine } from "./setup/engine.ts";
import { timeStep } from "./log.ts";

export interface Status {
  model: { id: string; kind: string; repo: string; checkpointDir: string; checkpointPresent: boolean; known: boolean };
  artifacts: ArtifactsStatus & { expertsDirInUse: string };
  engine: { binary: string; built: boolean; current: boolean };
  server: ServerState;
  settings: { quantization: string; maxTokens: number; temperature: number; topP: number; activeExperts: number | null; threads: number | null; showThinking: boolean };
  config: { filesRead: string[]; userConfigFile: string };
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
    },
    artifacts: { ...inspectArtifacts(target.artifactsDir), expertsDirInUse: target.expertsDir },
    engine: { binary: engine.binary, built: engine.built, current: engine.current },
    server,
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
    ["model", `${s.model.id}${s.model.known ? "" : " (not in the registry)"}`],
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
  return renderTable(lines);
}
