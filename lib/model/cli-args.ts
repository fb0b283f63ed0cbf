// Flags shared by the model scripts (extract-weights, repack-experts, make-test-model) and their checks.
import { existsSync, statSync } from "node:fs";
import type { ArgsDef } from "citty";
import { resolve } from "pathe";
import { UserError } from "../errors.ts";
import { expandHome } from "../fs.ts";

export const checkpointArgs = {
  model: { type: "string", description: "Checkpoint folder (config.json + *.safetensors)", valueHint: "DIR" },
  out: { type: "string", description: "Artifacts folder to write (model_weights.*, packed_experts/)", valueHint: "DIR" },
} as const satisfies ArgsDef;

/** The absolute path given by a required folder flag; `mustExist` also checks it is a folder. */
export function requireDirArg(value: string | undefined, flag: string, what: string, mustExist = true): string {
  if (!value) throw new UserError(`${flag} is required: ${what}`);
  const p = resolve(expandHome(value));
  if (mustExist && !(existsSync(p) && statSync(p).isDirectory())) throw new UserError(`${flag} ${value}: no such folder`, `${flag} takes ${what}`);
  return p;
}

export function parseBitsArg(value: string | undefined): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (![2, 4, 8].includes(n)) throw new UserError(`--bits must be 2, 4 or 8, not ${JSON.stringify(value)}`);
  return n;
}
