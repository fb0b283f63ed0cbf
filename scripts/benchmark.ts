#!/usr/bin/env bun
// Benchmarks: engine kernels and model decode, end to end through the server, the prep scripts.
//   bun scripts/benchmark.ts              (lists the targets)
//   bun scripts/benchmark.ts fullbench --artifacts DIR     bun scripts/benchmark.ts logits --artifacts DIR --tokens 1,2 --out f.f32
import { type ArgsDef, type CommandDef, defineCommand, runMain } from "citty";
import { join } from "pathe";
import { globalArgs, guard, reportError } from "../lib/cli.ts";
import { BENCH_TARGETS, findBenchTarget } from "../lib/bench/targets.ts";
import { closest } from "../lib/config/validate.ts";
import { renderTable } from "../lib/format.ts";
import { UserError } from "../lib/errors.ts";

const command = defineCommand({
  meta: { name: "benchmark", description: "Engine and end-to-end benchmarks; with no target, list them" },
  args: { ...globalArgs },
  // each target is a lazily imported command, so `benchmark TARGET --help` shows that target's options
  subCommands: Object.fromEntries(BENCH_TARGETS.map((t) => [t.name, () => loadTarget(t.name)])),
  setup({ rawArgs }) {
    const name = rawArgs.find((a) => !a.startsWith("-"));
    if (name && !findBenchTarget(name)) {
      const near = closest(name, BENCH_TARGETS.map((x) => x.name));
      throw new UserError(`unknown benchmark target "${name}"${near ? ` — did you mean "${near}"?` : ""}`, "run `flashchat benchmark` to list the targets", 2);
    }
  },
  run({ rawArgs }) {
    if (rawArgs.some((a) => !a.startsWith("-"))) return; // a target ran
    console.log("Benchmark targets (flashchat benchmark TARGET --help for options):\n");
    console.log(renderTable(BENCH_TARGETS.map((t) => [`  ${t.name}`, t.description])));
  },
});

/** Import a target's command. */
export async function loadTarget(name: string): Promise<CommandDef<ArgsDef>> {
  const t = findBenchTarget(name)!;
  const file = join(import.meta.dir, "..", "lib", "bench", t.file);
  const mod = (await import(file)) as Record<string, CommandDef<ArgsDef> | undefined>;
  const cmd = t.exportName ? mod[t.exportName] : mod.default;
  if (!cmd) throw new Error(`bug: lib/bench/${t.file} has no export ${t.exportName ?? "default"}`);
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
