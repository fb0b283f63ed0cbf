// An engine whose parent dies exits, even in the middle of a generation (compute threads busy) and with its stdin
// still open (so it is not the EOF on stdin that ends it).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { closeSync, constants, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "pathe";
import { buildEngine, ENGINE, makeFixtureArtifacts, makeTempDir, removeDir } from "./_fixture.ts";

let artifacts = "";
let tmp = "";
beforeAll(async () => {
  await buildEngine();
  artifacts = await makeFixtureArtifacts();
  tmp = makeTempDir();
});
afterAll(() => {
  removeDir(artifacts);
  removeDir(tmp);
});

/** Is `pid` still a live process (a zombie counts as gone)? */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
  } catch {
    return process.platform !== "linux";
  }
}

test("SIGKILL of the engine's parent during a generation ends the engine", async () => {
  // stdin is a FIFO this test holds open and stdout a file, so neither EOF nor SIGPIPE can be what ends the engine
  const fifo = join(tmp, "stdin.fifo");
  const outPath = join(tmp, "stdout.jsonl");
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  const input = openSync(fifo, constants.O_RDWR);
  const output = openSync(outPath, "w");
  const parent = Bun.spawn([process.execPath, join(import.meta.dir, "engine-parent-fixture.ts"), ENGINE, artifacts], {
    stdin: input,
    stdout: output,
    stderr: "inherit",
  });
  const lines = () => readFileSync(outPath, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { type: string; pid?: number });
  let enginePid = 0;
  try {
    // bounded waits for conditions (hang guards, not speed limits)
    const waitFor = async (what: string, cond: () => boolean) => {
      for (let i = 0; i < 600 && !cond(); i++) await Bun.sleep(50);
      if (!cond()) throw new Error(`timed out waiting for ${what}`);
    };
    // the fixture writes the pid line after spawning; the engine's ready line may come first
    await waitFor("ready and the pid", () => lines().some((m) => m.type === "ready") && lines().some((m) => m.type === "pid"));
    enginePid = lines().find((m) => m.type === "pid")!.pid!;
    writeSync(input, '{"op":"generate","id":"g","tokens":[1,2,3],"max_tokens":100000,"stop_tokens":[]}\n');
    await waitFor("a token", () => lines().some((m) => m.type === "token"));
    expect(alive(enginePid)).toBe(true);
    parent.kill("SIGKILL");
    await parent.exited;
    await waitFor("the engine to exit", () => !alive(enginePid)).catch(() => {});
    expect(alive(enginePid)).toBe(false);
    expect(lines().some((m) => m.type === "done")).toBe(false); // killed mid-generation, not finished or cancelled
  } finally {
    if (enginePid && alive(enginePid)) process.kill(enginePid, "SIGKILL");
    parent.kill("SIGKILL");
    closeSync(input);
    closeSync(output);
  }
}, 120_000);
