// `flashchat status`: what is where, as a user sees it and as --json.
import { afterEach, describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import { makeTempHome, repoRoot, runCli, type TempHome } from "../helpers/cli.ts";

let t: TempHome;
afterEach(() => t?.[Symbol.dispose]());

describe("flashchat status", () => {
  test("--json on an empty home: every section, nothing prepared, no server", async () => {
    t = makeTempHome();
    const r = await runCli(["status", "--json"], { env: { ...t.env, FLASHCHAT_SERVER_PORT: "1" } });
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(Object.keys(s).sort()).toEqual(["artifacts", "config", "engine", "loaded", "model", "server", "settings"]);
    expect(s.loaded).toBeNull();
    expect(s.model).toMatchObject({ id: "mlx-community/Qwen3.5-397B-A17B-4bit", kind: "hub", checkpointDir: "", checkpointPresent: false, known: true });
    expect(s.artifacts).toMatchObject({ exists: false, weights: { present: false, bytes: 0 }, weightsComplete: false });
    expect(s.server).toMatchObject({ running: false, healthy: false, stale: false, port: 1 });
    expect(s.settings).toMatchObject({ quantization: "4bit", maxTokens: 8192, temperature: 0.7, topP: 0.9, threads: null });
    expect(s.config.filesRead).toEqual([join(t.env.XDG_CONFIG_HOME!, "flashchat", "config")]);
    expect(typeof s.engine.built).toBe("boolean");
  });

  test("a prepared local checkpoint: weights, manifest and every expert layer; a stale pid file is reported", async () => {
    t = makeTempHome();
    const ckpt = join(t.dir, "tiny");
    cpSync(join(repoRoot, "test", "fixtures", "tiny-qwen35-moe"), ckpt, { recursive: true });
    const env = { ...t.env, FLASHCHAT_MODEL_REPO: ckpt, FLASHCHAT_SERVER_PORT: "1" };
    const before = JSON.parse((await runCli(["status", "--json"], { env })).stdout);
    expect(before.model).toMatchObject({ kind: "local", checkpointDir: ckpt, checkpointPresent: true, known: false });
    const out = before.artifacts.dir as string;
    for (const script of ["extract-weights.ts", "repack-experts.ts"]) {
      const r = await runCli(["--model", ckpt, "--out", out], { env, script: join(repoRoot, "scripts", script) });
      expect({ script, code: r.code, err: r.code ? r.stderr : "" }).toEqual({ script, code: 0, err: "" });
    }
    mkdirSync(join(t.env.XDG_CONFIG_HOME!, "flashchat"), { recursive: true });
    writeFileSync(join(t.env.XDG_CONFIG_HOME!, "flashchat", "server.pid"), JSON.stringify({ pid: 999999, port: 1, host: "127.0.0.1" }));
    const r = await runCli(["status", "--json"], { env });
    const s = JSON.parse(r.stdout);
    expect(s.artifacts.weights.present).toBe(true);
    expect(s.artifacts.weightsComplete).toBe(true);
    expect(s.artifacts.manifest).toMatchObject({ present: true, valid: true, sourceFormat: "mlx" });
    expect(s.artifacts.experts).toMatchObject({ layout: true, bits: 4, layersPresent: [0, 1, 2, 3], complete: true });
    expect(s.artifacts.experts2bit.layersPresent).toEqual([]);
    expect(s.server).toMatchObject({ running: false, stale: true });
    const human = await runCli(["status"], { env });
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/experts\s+4\/4 layers/);
    expect(human.stdout).toContain("stale pid file");
  }, 60_000); // five processes one after another: more than bun test's 5 s default on a busy machine
});
