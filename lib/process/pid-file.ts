// server.pid: which process `flashchat serve` started, on which port (JSON; a bare pid from the old tool is read too).
import { existsSync, readFileSync, rmSync } from "node:fs";
import { writeFileAtomic } from "../fs.ts";

export interface PidInfo {
  pid: number;
  port?: number;
  host?: string;
  model?: string;
  logFile?: string;
  startedAt?: string;
}

export function readPidFile(path: string): PidInfo | undefined {
  if (!existsSync(path)) return undefined;
  const text = readFileSync(path, "utf8").trim();
  if (/^\d+$/.test(text)) return { pid: Number(text) };
  try {
    const info = JSON.parse(text) as PidInfo;
    if (Number.isInteger(info.pid) && info.pid > 0) return info;
  } catch {
    // garbage: treated as stale
  }
  return { pid: 0 };
}

export function writePidFile(path: string, info: PidInfo): void {
  writeFileAtomic(path, `${JSON.stringify(info)}\n`, 0o600);
}

export function removePidFile(path: string): void {
  rmSync(path, { force: true });
}
