// A parent for the engine (spawned by parent-death.test.ts): starts it with this process's stdin and stdout (so the
// engine's stdin stays open after this process dies), prints the engine's pid as a JSON line, then waits.
//   bun engine-parent-fixture.ts ENGINE ARTIFACTS
export {};

const [binary, artifacts] = process.argv.slice(2) as [string, string];
const engine = Bun.spawn([binary, "--artifacts", artifacts, "--threads", "2", "--context", "4096"], {
  stdin: "inherit",
  stdout: "inherit",
  stderr: "ignore",
});
process.stdout.write(`${JSON.stringify({ type: "pid", pid: engine.pid })}\n`);
await engine.exited;
