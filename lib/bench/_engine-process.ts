// Runs the engine binary in one of its batch modes (logits, bench MODE) with inherited output.
import { existsSync } from "node:fs";
import { type ArgsDef } from "citty";
import { engineBinaryPath } from "../engine/client.ts";
import { UserError } from "../errors.ts";

/** Flags shared by the engine benchmark targets and `logits`. */
export const engineRunArgs = {
  artifacts: { type: "string", description: "Artifacts folder (model_weights.bin/json + packed_experts/)", valueHint: "DIR", required: true },
  experts: { type: "string", description: "Packed experts folder (default DIR/packed_experts; packed_experts_2bit for 2-bit)", valueHint: "DIR" },
  threads: { type: "string", description: "Compute threads (default: all cores)", valueHint: "N" },
  activeExperts: { type: "string", description: "Experts per token K (default: the model's)", valueHint: "K" },
  expertIo: {
    type: "string",
    description: "How experts reach the kernels: auto (default), pread, mmap or populate (engine --expert-io)",
    valueHint: "MODE",
  },
  expertCacheMb: {
    type: "string",
    description: "With --expertIo pread: keep at most this many MB of the expert files in the page cache (engine --expert-cache-mb; Linux)",
    valueHint: "MB",
  },
  backend: {
    type: "string",
    description: "Engine backend: auto, cpu, cpu:N, metal (macOS) or metal-emu (the Metal backend on the CPU emulator) (engine --backend)",
    valueHint: "NAME",
  },
  binary: { type: "string", description: "Engine binary (default native/build/flashchat-engine)", valueHint: "FILE" },
} as const satisfies ArgsDef;

export interface EngineRunFlags {
  artifacts?: string;
  experts?: string;
  threads?: string;
  activeExperts?: string;
  expertIo?: string;
  expertCacheMb?: string;
  backend?: string;
  binary?: string;
}

/** The engine flags for these options, checked. */
export function engineRunArgv(a: EngineRunFlags): string[] {
  if (!a.artifacts) throw new UserError("--artifacts DIR is required");
  if (!existsSync(a.artifacts)) throw new UserError(`no artifacts folder at ${a.artifacts}`, "make one with extract-weights and repack-experts");
  const argv = ["--artifacts", a.artifacts];
  if (a.experts) argv.push("--experts", a.experts);
  for (const [flag, v] of [["--threads", a.threads], ["--active-experts", a.activeExperts]] as const) {
    if (v === undefined) continue;
    if (!/^[1-9]\d*$/.test(String(v))) throw new UserError(`${flag} must be a positive integer, not "${v}"`, undefined, 2);
    argv.push(flag, String(v));
  }
  if (a.expertIo !== undefined) {
    const modes = ["auto", "pread", "mmap", "populate"];
    if (!modes.includes(a.expertIo)) throw new UserError(`--expertIo must be one of ${modes.join(", ")}, not "${a.expertIo}"`, undefined, 2);
    argv.push("--expert-io", a.expertIo);
  }
  if (a.expertCacheMb !== undefined) {
    if (!/^\d+(\.\d+)?$/.test(String(a.expertCacheMb)) || !(Number(a.expertCacheMb) > 0)) {
      throw new UserError(`--expertCacheMb must be a number of MB above 0, not "${a.expertCacheMb}"`, undefined, 2);
    }
    argv.push("--expert-cache-mb", String(a.expertCacheMb));
  }
  if (a.backend !== undefined) {
    if (!/^(auto|cpu|cpu:\w+|metal|metal-emu)$/.test(a.backend)) {
      throw new UserError(`--backend must be auto, cpu, cpu:N, metal or metal-emu, not "${a.backend}"`, undefined, 2);
    }
    argv.push("--backend", a.backend);
  }
  return argv;
}

/** Run the engine with `args`, its stdout/stderr going to ours; a non-zero exit becomes a UserError with that code. */
export async function runEngineBatch(args: string[], binary = engineBinaryPath(), stdout: "inherit" | "pipe" = "inherit"): Promise<string> {
  if (!existsSync(binary)) throw new UserError(`the engine is not built (${binary} is missing)`, "run: make engine");
  const proc = Bun.spawn([binary, ...args], { stdin: "ignore", stdout, stderr: "inherit" });
  const out = stdout === "pipe" ? await new Response(proc.stdout as ReadableStream).text() : "";
  const code = await proc.exited;
  if (code !== 0) {
    const what = code === 3 ? "could not load the model" : code === 2 ? "rejected its arguments" : "failed";
    throw new UserError(`the engine ${what} (exit ${code})`, undefined, code === 2 ? 2 : 1);
  }
  return out;
}
