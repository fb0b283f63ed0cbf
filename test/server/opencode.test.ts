// OpenCode itself (the opencode-ai dev dependency) against the real server and engine on the demo model: `opencode
// run` with OpenCode's full system prompt and tools, a call of its `read` tool, the result sent back, a final reply.
// The demo model's weights are random, so its replies are scripted: the server's engine is wrapped so that every
// generate carries force_tokens (the engine's test hook, native/PROTOCOL.md) chosen from the prompt it was given.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import { startEngine } from "../../lib/engine/client.ts";
import type { Engine } from "../../lib/engine/types.ts";
import { extractWeights } from "../../lib/model/extract.ts";
import { repackExperts } from "../../lib/model/repack.ts";
import { bundledQwenTokenizerDir, writeTestModel } from "../../lib/model/test-model.ts";
import type { RunningServer } from "../../lib/server/app.ts";
import { loadTokenizer, type ModelTokenizer } from "../../lib/server/tokenizer.ts";
import { ensureEngineBuilt } from "./_real-model.ts";
import { createTempDir, startTestServer } from "./_server-fixture.ts";

setDefaultTimeout(600_000);
/** The most one `opencode run` may take (three requests, one of them a 7k-token prefill on a loaded 2-core machine). */
const RUN_TIMEOUT_MS = 300_000;

const tmp = createTempDir("flashchat-opencode-");
const modelDir = join(tmp.dir, "model");
const project = join(tmp.dir, "project");
const home = join(tmp.dir, "home");
const fileText = "the launch code is 4417";
let server: RunningServer;
let tok: ModelTokenizer;

/** What the scripted engine saw and answered, request by request. */
const seen: { prompt: string; nTokens: number; reply: string }[] = [];

/** The reply OpenCode's request gets: a title for the title agent, a call of `read`, then the answer after its result. */
function scriptedReply(prompt: string): string {
  if (prompt.includes("<tool_response>")) return "The file says the launch code is 4417.";
  if (prompt.includes("# Tools")) return `<think>\nI should read the file.\n</think>\n\n<tool_call>\n{"name": "read", "arguments": {"filePath": "${join(project, "notes.txt")}"}}\n</tool_call>`;
  return "Reading a note";
}

function scriptedEngine(e: Engine): Engine {
  return {
    get ready() {
      return e.ready;
    },
    get pid() {
      return e.pid;
    },
    get exited() {
      return e.exited;
    },
    generate(req, signal) {
      const prompt = tok.decode(req.tokens);
      const reply = scriptedReply(prompt);
      seen.push({ prompt, nTokens: req.tokens.length, reply });
      const forced = [...tok.encode(reply), tok.endTokenIds[0]!];
      return e.generate({ ...req, force_tokens: forced, max_tokens: forced.length }, signal);
    },
    logits: (t) => e.logits(t),
    reset: () => e.reset(),
    stats: () => e.stats(),
    saveSnapshots: (p) => e.saveSnapshots(p),
    loadSnapshots: (p) => e.loadSnapshots(p),
    close: (ms) => e.close(ms),
    kill: (m, c) => e.kill(m, c),
    activity: () => e.activity(),
  };
}

/** OpenCode's own binary: the platform package the opencode-ai wrapper would run. */
function opencodeBinary(): string {
  const arch = process.arch === "x64" ? "x64" : process.arch;
  for (const pkg of [`opencode-${process.platform}-${arch}`, `opencode-${process.platform}-${arch}-baseline`]) {
    try {
      const bin = join(Bun.resolveSync(`${pkg}/package.json`, import.meta.dir), "..", "bin", "opencode");
      if (existsSync(bin)) return bin;
    } catch {
      // not installed for this platform
    }
  }
  return join(Bun.resolveSync("opencode-ai/package.json", import.meta.dir), "..", "bin", "opencode.exe");
}

beforeAll(async () => {
  const artifactsDir = join(tmp.dir, "artifacts");
  await ensureEngineBuilt();
  await writeTestModel({ dims: "demo", outDir: modelDir, seed: 3, tokenizerDir: bundledQwenTokenizerDir(), onProgress: () => {} });
  await extractWeights({ checkpointDir: modelDir, outDir: artifactsDir });
  await repackExperts({ checkpointDir: modelDir, outDir: artifactsDir });
  tok = await loadTokenizer(modelDir);
  server = await startTestServer(tmp.dir, {
    tokenizerDir: modelDir,
    modelId: "demo",
    engine: { artifactsDir, threads: 2, context: 32768 },
    defaults: { maxTokens: 256, temperature: 0, topP: 1, allowForceTokens: false },
    startEngine: async (o) => scriptedEngine(await startEngine(o)),
  });
  if (server.host.state !== "ok") throw new Error(`engine did not start: ${server.host.error}`);
}, 600_000);
afterAll(async () => {
  await server?.stop(2000);
  tmp[Symbol.dispose]();
});

describe("OpenCode end to end", () => {
  test("opencode run: OpenCode's system prompt and tools are accepted, its read tool is called, the result comes back, the run completes", async () => {
    mkdirSync(project, { recursive: true });
    mkdirSync(home, { recursive: true });
    writeFileSync(join(project, "notes.txt"), `${fileText}\n`);
    // the setup RUN.md documents: our server as an OpenAI-compatible provider
    const config = {
      $schema: "https://opencode.ai/config.json",
      provider: {
        flashchat: {
          npm: "@ai-sdk/openai-compatible",
          name: "flashchat",
          options: { baseURL: `${server.url}/v1` },
          models: { demo: { name: "demo", limit: { context: 32768, output: 256 } } },
        },
      },
      model: "flashchat/demo",
      small_model: "flashchat/demo",
      autoupdate: false,
      share: "disabled",
    };
    writeFileSync(join(project, "opencode.json"), JSON.stringify(config, null, 2));
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      XDG_DATA_HOME: join(home, ".local", "share"),
      XDG_CACHE_HOME: join(home, ".cache"),
      XDG_STATE_HOME: join(home, ".local", "state"),
      // no models.dev catalogue download, no update check, no default plugins
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      OPENCODE_DISABLE_AUTOUPDATE: "1",
      OPENCODE_DISABLE_DEFAULT_PLUGINS: "1",
    };
    const proc = Bun.spawn([opencodeBinary(), "run", "--pure", "--format", "json", "Read notes.txt and tell me what it says"], { cwd: project, env, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    const timer = setTimeout(() => proc.kill("SIGKILL"), RUN_TIMEOUT_MS);
    const [out, err, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
    clearTimeout(timer);
    if (code !== 0) throw new Error(`opencode run exited ${code}${proc.signalCode ? ` (${proc.signalCode}: over ${RUN_TIMEOUT_MS} ms?)` : ""}:\n${err.slice(-4000)}\n${out.slice(-2000)}`);
    const events = out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));

    // (a) the agent's turn: OpenCode's full system prompt and its tools reached the model through the template
    const turn1 = seen.find((s) => s.prompt.includes("You are opencode"));
    expect(turn1).toBeDefined();
    for (const t of ["read", "bash", "edit", "glob", "grep", "write"]) expect(turn1!.prompt).toContain(`"name": "${t}"`);
    expect(turn1!.nTokens).toBeGreaterThan(5000);

    // (b) the model called `read`; OpenCode ran it and sent the file back in the next request
    const use = events.find((e) => e.type === "tool_use");
    expect(use?.part).toMatchObject({ tool: "read", state: { status: "completed", input: { filePath: join(project, "notes.txt") } } });
    expect(use.part.state.output).toContain(fileText);
    const turn2 = seen.find((s) => s.prompt.includes("<tool_response>"));
    expect(turn2?.prompt).toContain(fileText);
    // and the run completed with the final answer
    const texts = events.filter((e) => e.type === "text").map((e) => e.part.text);
    expect(texts.join("")).toContain("The file says the launch code is 4417.");
    const finishes = events.filter((e) => e.type === "step_finish").map((e) => e.part);
    expect(finishes.map((f) => f.reason)).toEqual(["tool-calls", "stop"]);

    // prefix reuse as OpenCode reports it: the second step read (nearly) all of the first step's prompt from the cache
    expect(finishes[1].tokens.cache.read).toBeGreaterThanOrEqual(turn1!.nTokens - 3);
  });
});
