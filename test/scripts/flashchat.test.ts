// The flashchat CLI as a user runs it: spawned, with a throwaway HOME.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import pkg from "../../package.json" with { type: "json" };
import { makeTempHome, repoRoot, runCli, type TempHome } from "../helpers/cli.ts";

let t: TempHome;
afterEach(() => t?.[Symbol.dispose]());

describe("help, version, unknown commands", () => {
  test("--help lists every command, exit 0", async () => {
    t = makeTempHome();
    const r = await runCli(["--help"], { env: t.env });
    expect(r.code).toBe(0);
    for (const c of ["chat", "prompt", "serve", "status", "config", "sessions", "setup", "models", "benchmark"]) expect(r.stdout).toContain(c);
    expect(r.stdout).toContain("--config");
    expect(r.stdout).not.toContain("\x1b["); // no colour codes in a pipe
  });

  test("no command and no terminal prints help", async () => {
    t = makeTempHome();
    const r = await runCli([], { env: t.env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("USAGE");
  });

  test("--version prints the package version", async () => {
    t = makeTempHome();
    const r = await runCli(["--version"], { env: t.env });
    expect(r).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: "" });
  });

  test("an unknown command names the closest one and exits 2, no stack", async () => {
    t = makeTempHome();
    const r = await runCli(["confg"], { env: t.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "confg"');
    expect(r.stderr).toContain('did you mean "config"');
    expect(r.stderr).not.toContain(" at ");
  });

  test("command help works as `help X` and `X --help`", async () => {
    t = makeTempHome();
    const a = await runCli(["help", "config"], { env: t.env });
    const b = await runCli(["config", "--help"], { env: t.env });
    expect(a.code).toBe(0);
    expect(a.stdout).toContain("--full-reset");
    expect(b.stdout).toBe(a.stdout);
  });

  test("global options work before and after the command", async () => {
    t = makeTempHome();
    const conf = join(t.dir, "x.conf");
    writeFileSync(conf, "SERVER_PORT=4321\n");
    for (const args of [["--config", conf, "config", "get", "SERVER_PORT"], ["config", "get", "SERVER_PORT", "--config", conf], ["-q", "config", "get", "SERVER_PORT", `--config=${conf}`], ["config", "-v", "get", "SERVER_PORT", "--config", conf]]) {
      const r = await runCli(args, { env: t.env });
      expect({ args, code: r.code, out: r.stdout }).toEqual({ args, code: 0, out: "4321\n" });
    }
  });
});

describe("flashchat config", () => {
  test("env beats both config files for get", async () => {
    t = makeTempHome();
    const cwd = join(t.dir, "proj");
    mkdirSync(join(t.env.XDG_CONFIG_HOME!, "flashchat"), { recursive: true });
    mkdirSync(cwd);
    writeFileSync(join(t.env.XDG_CONFIG_HOME!, "flashchat", "config"), 'SERVER_PORT="8100"\n');
    writeFileSync(join(cwd, "flashchat.config"), "SERVER_PORT=8200\n");
    const r = await runCli(["config", "get", "SERVER_PORT"], { env: { ...t.env, FLASHCHAT_SERVER_PORT: "8333" }, cwd });
    expect(r.stdout).toBe("8333\n");
    const r2 = await runCli(["config", "get", "SERVER_PORT"], { env: t.env, cwd });
    expect(r2.stdout).toBe("8200\n");
  });

  test("listing shows every key, its value and its source; --json too", async () => {
    t = makeTempHome();
    const r = await runCli(["config"], { env: { ...t.env, FLASHCHAT_TOP_P: "0.5" } });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/TOP_P\s+"0.5"\s+environment variable FLASHCHAT_TOP_P/);
    expect(r.stdout).toMatch(/SERVER_PORT\s+"8000"\s+the default/);
    const j = await runCli(["config", "--json"], { env: t.env });
    const parsed = JSON.parse(j.stdout);
    expect(parsed.settings.map((s: { key: string }) => s.key)).toContain("THREADS");
    expect(parsed.settings.find((s: { key: string }) => s.key === "SERVER_PORT")).toEqual({ key: "SERVER_PORT", value: "8000", source: { kind: "default", where: "default" } });
  });

  test("set SERVER_PORT abc exits 2 naming the key and the range; the file is untouched", async () => {
    t = makeTempHome();
    await runCli(["config", "set", "SERVER_PORT", "8100"], { env: t.env });
    const file = join(t.env.XDG_CONFIG_HOME!, "flashchat", "config");
    const before = readFileSync(file, "utf8");
    const r = await runCli(["config", "set", "SERVER_PORT", "abc"], { env: t.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid SERVER_PORT "abc": expected a whole number from 1 to 65535');
    expect(r.stderr).not.toContain(" at ");
    expect(readFileSync(file, "utf8")).toBe(before);
  });

  test("set keeps comments and other lines, and get reads it back", async () => {
    t = makeTempHome();
    const dir = join(t.env.XDG_CONFIG_HOME!, "flashchat");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "config"), '# my settings\nexport MODEL_REPO="a/b"   # mine\n\n# port:\nSERVER_PORT=1\n');
    const r = await runCli(["config", "set", "server_port", "9001"], { env: t.env });
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, "config"), "utf8")).toBe('# my settings\nexport MODEL_REPO="a/b"   # mine\n\n# port:\nSERVER_PORT="9001"\n');
    expect((await runCli(["config", "get", "SERVER_PORT"], { env: t.env })).stdout).toBe("9001\n");
  });

  test("set fixes a bad value that stops everything else from loading", async () => {
    t = makeTempHome();
    const dir = join(t.env.XDG_CONFIG_HOME!, "flashchat");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "config"), "TOP_P=7\n");
    expect((await runCli(["config", "get", "TOP_P"], { env: t.env })).code).toBe(2);
    expect((await runCli(["config", "set", "TOP_P", "0.8"], { env: t.env })).code).toBe(0);
    expect((await runCli(["config", "get", "TOP_P"], { env: t.env })).stdout).toBe("0.8\n");
  });

  test("an unknown key in a file is a warning naming it", async () => {
    t = makeTempHome();
    const cwd = join(t.dir, "p");
    mkdirSync(cwd);
    writeFileSync(join(cwd, "flashchat.config"), "SERVR_PORT=1\n");
    const r = await runCli(["config", "get", "SERVER_PORT"], { env: t.env, cwd });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("8000\n");
    expect(r.stderr).toContain(`${join(cwd, "flashchat.config")}:1: unknown setting SERVR_PORT (did you mean SERVER_PORT?)`);
  });

  test("unknown key for get/set exits 2", async () => {
    t = makeTempHome();
    const r = await runCli(["config", "get", "PORT"], { env: t.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown setting PORT");
  });

  test("--reset without a terminal writes the defaults (keeping the model and port) and keeps sessions", async () => {
    t = makeTempHome();
    await runCli(["config", "set", "SERVER_PORT", "9999"], { env: t.env });
    await runCli(["config", "set", "TEMPERATURE", "0.3"], { env: t.env });
    const sessions = join(t.env.XDG_CONFIG_HOME!, "flashchat", "sessions");
    mkdirSync(sessions, { recursive: true });
    writeFileSync(join(sessions, "chat-1.jsonl"), '{"role":"user","content":"hi"}\n');
    const r = await runCli(["config", "--reset"], { env: t.env });
    expect(r.code).toBe(0);
    expect((await runCli(["config", "get", "SERVER_PORT"], { env: t.env })).stdout).toBe("9999\n");
    expect((await runCli(["config", "get", "TEMPERATURE"], { env: t.env })).stdout).toBe("0.7\n");
    expect(existsSync(join(sessions, "chat-1.jsonl"))).toBe(true);
  }, 30_000); // five commands: room on a busy machine

  test("--full-reset needs --yes without a terminal, then deletes config, sessions, logs, pid — not models", async () => {
    t = makeTempHome();
    const dir = join(t.env.XDG_CONFIG_HOME!, "flashchat");
    for (const d of ["sessions", "logs"]) mkdirSync(join(dir, d), { recursive: true });
    writeFileSync(join(dir, "config"), "SERVER_PORT=1\n");
    writeFileSync(join(dir, "server.pid"), "123\n");
    const models = join(t.env.XDG_DATA_HOME!, "flashchat", "models", "m");
    mkdirSync(models, { recursive: true });
    writeFileSync(join(models, "model_weights.bin"), "x");
    const hub = join(t.env.HF_HOME!, "hub", "models--a--b");
    mkdirSync(hub, { recursive: true });
    const no = await runCli(["config", "--full-reset"], { env: t.env });
    expect(no.code).toBe(2);
    expect(no.stderr).toContain("--yes");
    expect(existsSync(join(dir, "config"))).toBe(true);
    const yes = await runCli(["config", "--full-reset", "--yes"], { env: t.env });
    expect(yes.code).toBe(0);
    for (const p of ["config", "sessions", "logs", "server.pid"]) expect(existsSync(join(dir, p))).toBe(false);
    expect(existsSync(join(models, "model_weights.bin"))).toBe(true);
    expect(existsSync(hub)).toBe(true);
  });
});

describe("config set survives a crash mid-write", () => {
  test("killing writers at random moments never leaves a partial file", async () => {
    t = makeTempHome();
    const file = join(t.dir, "config");
    const writer = join(t.dir, "writer.ts");
    // Each write is ~2 MB so a SIGKILL lands mid-write; every complete version is self-consistent.
    writeFileSync(
      writer,
      `import { setUserSetting } from ${JSON.stringify(join(repoRoot, "lib/config/edit.ts"))};
       import { writeFileAtomic } from ${JSON.stringify(join(repoRoot, "lib/fs.ts"))};
       const file = process.argv[2];
       for (let i = 0; ; i++) {
         writeFileAtomic(file, "# " + "x".repeat(2_000_000) + "\\n" + 'SERVER_PORT="' + (1000 + (i % 9000)) + '"\\n');
         setUserSetting(file, "TOP_P", "0." + (i % 9 + 1));
       }`,
    );
    writeFileSync(file, 'SERVER_PORT="1"\n');
    for (let round = 0; round < 5; round++) {
      const proc = Bun.spawn([process.execPath, writer, file], { env: t.env, stdout: "ignore", stderr: "pipe" });
      await Bun.sleep(150 + round * 37);
      proc.kill("SIGKILL");
      await proc.exited;
      const text = readFileSync(file, "utf8");
      expect(text).toMatch(/SERVER_PORT="\d+"\n/);
      expect(text.endsWith("\n")).toBe(true);
    }
  });
});

describe("the ./flashchat wrapper", () => {
  test("works through a symlink from another folder", async () => {
    t = makeTempHome();
    const link = join(t.dir, "bin", "fc");
    mkdirSync(join(t.dir, "bin"));
    symlinkSync(join(repoRoot, "flashchat"), link);
    const proc = Bun.spawn(["sh", link, "--version"], { cwd: t.dir, env: { ...t.env, FLASHCHAT_BUN: process.execPath }, stdout: "pipe", stderr: "pipe" });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    expect(code).toBe(0);
    expect(out).toBe(`${pkg.version}\n`);
  });
});

describe("strict flags and arguments", () => {
  test("every command rejects an unknown flag with exit 2, no stack", async () => {
    t = makeTempHome();
    const { COMMANDS } = await import("../../lib/commands.ts");
    for (const c of COMMANDS) {
      const r = await runCli([c.name, "--bogus-flag"], { env: t.env });
      expect({ c: c.name, code: r.code }).toEqual({ c: c.name, code: 2 });
      expect(r.stderr).toContain("unknown option --bogus-flag");
      expect(r.stderr).not.toContain(" at ");
    }
  }, 120_000);

  test("a misspelt flag gets a did-you-mean, a surplus argument is refused, known forms pass", async () => {
    t = makeTempHome();
    const typo = await runCli(["prompt", "--tokns", "5", "x"], { env: t.env });
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("unknown option --tokns — did you mean --tokens?");
    const surplus = await runCli(["prompt", "a", "b"], { env: t.env });
    expect(surplus.code).toBe(2);
    expect(surplus.stderr).toContain("unexpected argument: b");
    const target = await runCli(["benchmark", "run", "--modle", "demo"], { env: t.env });
    expect(target.code).toBe(2);
    expect(target.stderr).toContain("did you mean --model?");
    // --no-X for a boolean, kebab-case, --flag=value and the global flags after the command are all accepted
    const ok = await runCli(["status", "--no-json", "-v", "--model=demo"], { env: t.env });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("demo");
  }, 60_000);
});
