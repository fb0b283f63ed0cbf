// `flashchat models show NAME` and `models rm NAME` through the real CLI: what show reports, what rm deletes
// (sizes, consent, --yes, --json), and that it never deletes anything outside our folders or the repo's HF cache
// entry, whatever symlinks or `..` names it meets.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import { makeTempHome, repoRoot, runCli, unusedPort } from "../helpers/cli.ts";
import { hasTmux, Tmux } from "../tmux/tmux.ts";

setDefaultTimeout(120_000);

const t = makeTempHome("fc-models-");
const env: Record<string, string> = { ...t.env, FLASHCHAT_SERVER_PORT: unusedPort(), TERM: "xterm-256color" };
const data = join(env.XDG_DATA_HOME!, "flashchat");
const hub = join(env.HF_HOME!, "hub");
const outside = join(t.dir, "outside"); // a user's files next to ours: must survive every rm
const cli = (args: string[]) => runCli(args, { env, cwd: t.dir });
afterAll(() => t[Symbol.dispose]());

/** A fake HF cache entry of `repo` (blobs, snapshot links, refs) of `bytes` bytes, and an artifacts folder. */
function fakeModel(repo: string, slug: string, bytes: number) {
  const entry = join(hub, `models--${repo.replace("/", "--")}`);
  mkdirSync(join(entry, "blobs"), { recursive: true });
  mkdirSync(join(entry, "snapshots", "rev1"), { recursive: true });
  mkdirSync(join(entry, "refs"), { recursive: true });
  writeFileSync(join(entry, "blobs", "b1"), Buffer.alloc(bytes, 1));
  symlinkSync("../../blobs/b1", join(entry, "snapshots", "rev1", "config.json"));
  writeFileSync(join(entry, "refs", "main"), "rev1");
  const art = join(data, "models", slug);
  mkdirSync(art, { recursive: true });
  writeFileSync(join(art, "model_weights.bin"), Buffer.alloc(1000, 2));
  return { entry, art };
}

describe("models show", () => {
  test("a registry model before any download: architecture, sizes, paths, quantization, context, sampling (--json and text)", async () => {
    const r = await cli(["models", "show", "qwen3.6-35b", "--json"]);
    expect(r.code).toBe(0);
    const m = JSON.parse(r.stdout);
    expect(m).toMatchObject({
      id: "qwen3.6-35b",
      kind: "hub",
      repo: "Qwen/Qwen3.6-35B-A3B",
      known: true,
      architecture: { model_type: "qwen3_5_moe", num_hidden_layers: 40, num_experts: 256, num_layers_full_attention: 10, num_layers_linear_attention: 30 },
      quantization: { source: "bf16, quantized by flashchat to 4-bit", bits: 4, setting: "4bit", prepared4bit: false },
      contextMax: 262144,
      activeExperts: 8,
      sampling: { temperature: 0.7, topP: 0.8, topK: 20 },
      paths: { checkpoint: "", hfCacheEntry: join(hub, "models--Qwen--Qwen3.6-35B-A3B"), artifacts: join(data, "models", "Qwen--Qwen3.6-35B-A3B") },
      onDisk: { download: 0, weights: 0, experts: 0, experts2bit: 0 },
    });
    expect(m.sizes.checkpointBytes).toBeGreaterThan(60e9);
    const text = await cli(["models", "show", "qwen3.6-35b"]);
    expect(text.stdout).toMatch(/architecture\s+qwen3_5_moe: 40 layers \(30 linear attention, 10 full\)/);
    expect(text.stdout).toMatch(/sampling\s+recommended: temperature 0.7, top-p 0.8, top-k 20/);
    expect(text.stdout).toMatch(/context\s+maximum 262144 tokens/);
  });

  test("the demo once set up: its real context and what is on disk; mistakes are one line", async () => {
    expect((await cli(["setup", "--model", "demo", "--yes"])).code).toBe(0);
    const m = JSON.parse((await cli(["models", "show", "demo", "--json"])).stdout);
    expect(m).toMatchObject({ id: "demo", kind: "demo", contextMax: 32768, quantization: { prepared4bit: true } });
    expect(m.onDisk.weights).toBeGreaterThan(1e6);
    expect(m.onDisk.download).toBeGreaterThan(1e6);
    const none = await cli(["models", "show"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("flashchat models show needs a model");
    const bad = await cli(["models", "frob", "demo"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown models action "frob"');
    const unknown = await cli(["models", "show", "nosuchmodel"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown model "nosuchmodel"');
    expect(unknown.stderr).not.toContain(" at ");
  });
});

describe("models rm", () => {
  test("without a terminal it needs --yes; --artifacts / --download pick what goes; sizes shown; --json reports it", async () => {
    const { entry, art } = fakeModel("Qwen/Qwen3.6-35B-A3B", "Qwen--Qwen3.6-35B-A3B", 123_456);
    const no = await cli(["models", "rm", "qwen3.6-35b"]);
    expect(no.code).toBe(1);
    expect(no.stderr).toContain("needs your consent, and there is no terminal to ask on");
    // sizes as on disk: the blob, the snapshot's link (a few bytes), the ref
    expect(no.stderr).toMatch(new RegExp(`artifacts +1\\.0 KB  ${art}`));
    expect(no.stderr).toMatch(new RegExp(`download +123 KB  ${entry}`));
    expect(existsSync(entry) && existsSync(art)).toBe(true);

    const a = await cli(["models", "rm", "qwen3.6-35b", "--artifacts", "--yes", "--json"]);
    expect(a.code).toBe(0);
    expect(JSON.parse(a.stdout)).toEqual({ model: "qwen3.6-35b", removed: [{ kind: "artifacts", path: art, bytes: 1000 }], bytes: 1000, notes: [] });
    expect(existsSync(art)).toBe(false);
    expect(existsSync(entry)).toBe(true);

    const d = await cli(["models", "rm", "qwen3.6-35b", "--download", "--yes"]);
    expect(d.code).toBe(0);
    expect(d.stderr).toContain("deleted 123 KB of qwen3.6-35b");
    expect(existsSync(entry)).toBe(false);
    expect(existsSync(hub)).toBe(true); // the cache itself stays

    const again = await cli(["models", "rm", "qwen3.6-35b", "--yes"]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("nothing of qwen3.6-35b to delete");
  });

  test("symlinks are removed as links, never followed: files outside survive", async () => {
    mkdirSync(outside, { recursive: true });
    writeFileSync(join(outside, "victim.txt"), "keep me");
    mkdirSync(join(outside, "experts"), { recursive: true });
    writeFileSync(join(outside, "experts", "layer_00.bin"), "keep me too");
    mkdirSync(join(outside, "whole-artifacts"), { recursive: true });
    writeFileSync(join(outside, "whole-artifacts", "model_weights.bin"), "and me");
    // a link in the cache entry to a file outside, a link in the artifacts to a folder outside
    const { entry, art } = fakeModel("mlx-community/Qwen3.5-397B-A17B-4bit", "mlx-community--Qwen3.5-397B-A17B-4bit", 10);
    symlinkSync(join(outside, "victim.txt"), join(entry, "snapshots", "rev1", "evil.safetensors"));
    symlinkSync(join(outside, "experts"), join(art, "packed_experts"));
    // another model's whole artifacts folder is a link to a folder outside
    mkdirSync(join(data, "models"), { recursive: true });
    symlinkSync(join(outside, "whole-artifacts"), join(data, "models", "mlx-community--Qwen3-Next-80B-A3B-Instruct-4bit"));
    const r1 = await cli(["models", "rm", "qwen3.5-397b", "--yes"]);
    expect(r1.code).toBe(0);
    const r2 = await cli(["models", "rm", "qwen3-next-80b", "--yes"]);
    expect(r2.code).toBe(0);
    expect(existsSync(entry) || existsSync(art) || existsSync(join(data, "models", "mlx-community--Qwen3-Next-80B-A3B-Instruct-4bit"))).toBe(false);
    expect(readFileSync(join(outside, "victim.txt"), "utf8")).toBe("keep me");
    expect(readFileSync(join(outside, "experts", "layer_00.bin"), "utf8")).toBe("keep me too");
    expect(readFileSync(join(outside, "whole-artifacts", "model_weights.bin"), "utf8")).toBe("and me");
  });

  test("`..` names and a user's own checkpoint folder: nothing outside our folders is touched", async () => {
    writeFileSync(join(outside, "config.json"), "{}");
    // a local folder reached with ..: its checkpoint is the user's (never deleted); it has no artifacts here
    const local = await cli(["models", "rm", join(t.dir, "home", "..", "outside"), "--yes"]);
    expect(local.code).toBe(0);
    expect(local.stderr).toContain(`the checkpoint folder ${outside} is yours: flashchat never deletes it`);
    expect(existsSync(join(outside, "config.json"))).toBe(true);
    // a repo name made of dots is not a repo
    for (const name of ["a/..", "../.."]) {
      const r = await cli(["models", "rm", name, "--yes"]);
      expect({ name, code: r.code, stack: r.stderr.includes(" at ") }).toEqual({ name, code: r.code === 0 ? 0 : 1, stack: false });
    }
    expect(existsSync(join(outside, "victim.txt")) && existsSync(hub) && existsSync(join(data, "models"))).toBe(true);
    expect(existsSync(t.home)).toBe(true);
  });

  test.skipIf(!hasTmux)("on a terminal: the sizes, then Delete …? [y/N]; n keeps everything, y deletes", async () => {
    const { entry } = fakeModel("Qwen/Qwen3.6-35B-A3B", "Qwen--Qwen3.6-35B-A3B", 2_000_000);
    for (const [answer, code] of [["n", 1], ["y", 0]] as const) {
      const term = new Tmux(t.dir, [process.execPath, join(repoRoot, "scripts", "flashchat.ts"), "models", "rm", "qwen3.6-35b", "--download"], env, { cwd: t.dir, cols: 200 });
      try {
        const screen = await term.waitFor("Delete 2.0 MB? [y/N]", 30_000, "screen");
        expect(screen).toMatch(new RegExp(`download +2\\.0 MB  ${entry}`));
        term.type(answer);
        term.send("Enter");
        const end = await term.waitFor(`[exited ${code}]`, 30_000, "screen");
        expect(end).toContain(answer === "n" ? "nothing was deleted" : "deleted 2.0 MB of qwen3.6-35b");
      } finally {
        term.kill();
      }
      expect(existsSync(entry)).toBe(answer === "n");
    }
  });
});
