#!/usr/bin/env bun
// Benchmarks: engine kernels and model decode, end to end through the server, the prep scripts.
//   bun scripts/benchmark.ts              (lists the targets)
//   bun scripts/benchmark.ts fullbench --artifacts DIR     bun scripts/benchmark.ts logits --artifacts DIR --tokens 1,2 --out f.f32
import { existsSync } from "node:fs";
import { type ArgsDef, type CommandDef, defineCommand, runMain } from "citty";
import { join } from "pathe";
import { globalArgs, guard, reportError } from "../lib/cli.ts";
import { BENCH_TARGETS, findBenchTarget } from "../lib/bench/targets.ts";
import { closest } from "../lib/config/validate.ts";
import { NotBuiltError, UserError } from "../lib/errors.ts";

const command = defineCommand({
  meta: { name: "benchmark", description: "Engine and end-to-end benchmarks; with no target, list them" },
  args: {
    ...globalArgs,
    target: { type: "positional", required: false, description: `One of: ${BENCH_TARGETS.map((t) => t.name).join(", ")}`, valueHint: "TARGET" },
  },
  async run({ rawArgs }) {
    const i = rawArgs.findIndex((a) => !a.startsWith("-"));
    if (i < 0) {
      const width = Math.max(...BENCH_TARGETS.map((t) => t.name.length));
      console.log("Benchmark targets (bun scripts/benchmark.ts TARGET --help for options):\n");
      for (const t of BENCH_TARGETS) console.log(`  ${t.name.padEnd(width)}  ${t.description}`);
      return;
    }
    const name = rawArgs[i]!;
    const target = await loadTarget(name);
    await runMain(target, { rawArgs: [...rawArgs.slice(0, i), ...rawArgs.slice(i + 1)] });
  },
});

/** Import a target's command; one whose module is not there yet says so. */
export async function loadTarget(name: string): Promise<CommandDef<ArgsDef>> {
  const t = findBenchTarget(name);
  if (!t) {
    const near = closest(name, BENCH_TARGETS.map((x) => x.name));
    throw new UserError(`unknown benchmark target "${name}"${near ? ` — did you mean "${near}"?` : ""}`, "run `flashchat benchmark` to list the targets", 2);
  }
  const file = join(import.meta.dir, "..", "lib", "bench", t.file);
  if (!existsSync(file)) throw new NotBuiltError(`benchmark target "${name}"`);
  const mod = (await import(file)) as Record<string, CommandDef<ArgsDef> | undefined>;
  const cmd = t.exportName ? mod[t.exportName] : mod.default;
  if (!cmd) throw new NotBuiltError(`benchmark target "${name}"`);
  return guard(cmd);
}

export default command;
if (import.meta.main) {
  try {
    await runMain(guard(command));
  } catch (e) {
    process.exit(reportError(e));
  }
}
