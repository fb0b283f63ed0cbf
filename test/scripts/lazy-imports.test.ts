// Start-up: the commands that must start fast never import the heavy packages (each costs tens to hundreds of ms
// of every start). A preload makes importing a banned package throw; the command must still succeed.
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "pathe";
import { makeTempHome } from "../helpers/cli.ts";

setDefaultTimeout(60_000);

const CLI = join(import.meta.dir, "..", "..", "scripts", "flashchat.ts");
const PRELOAD = join(import.meta.dir, "_ban-imports-fixture.ts");
const t = makeTempHome("flashchat-lazy-");
afterAll(() => t[Symbol.dispose]());

/** Loaded only by the commands that use them: setup, downloads, the server, shelling out. (c12 is loaded by every
 *  command that reads the config, and so is not on this list; --version and --help do not load it.) */
const HEAVY = ["zx", "@huggingface/hub", "@huggingface/tokenizers", "@huggingface/jinja", "@mlc-ai/web-xgrammar"];

async function run(args: string[], banned: string[]) {
  await using proc = Bun.spawn([process.execPath, "--preload", PRELOAD, CLI, ...args], {
    env: { ...t.env, FLASHCHAT_TEST_BANNED: banned.join(",") },
    cwd: t.dir,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([proc.stdout.text(), proc.stderr.text(), proc.exited]);
  return { stdout, stderr, code };
}

test("the ban works: a command that needs a banned package fails naming it", async () => {
  const r = await run(["status"], ["citty"]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain("imported citty");
});

test("--version loads neither citty nor consola nor any heavy package", async () => {
  const r = await run(["--version"], ["citty", "consola", "c12", ...HEAVY]);
  expect(r).toEqual({ code: 0, stdout: `${(await Bun.file(join(import.meta.dir, "..", "..", "package.json")).json()).version}\n`, stderr: "" });
});

test("config get and status load no heavy package, and no logger when they have nothing to say", async () => {
  const get = await run(["config", "get", "SERVER_PORT"], ["consola", ...HEAVY]);
  expect(get).toEqual({ code: 0, stdout: "8000\n", stderr: "" });
  const status = await run(["status"], ["consola", ...HEAVY]);
  expect(status.stderr).toBe("");
  expect(status.code).toBe(0);
  expect(status.stdout).toContain("server");
});

test("lazy loading keeps user mistakes one clear line with exit 2", async () => {
  for (const args of [["config", "get", "NO_SUCH_KEY"], ["status", "--modle", "demo"], ["statsu"]]) {
    const r = await run(args, HEAVY);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")[0]).toMatch(/unknown (setting NO_SUCH_KEY|option --modle — did you mean --model\?|command "statsu" — did you mean "status"\?)/);
    expect(r.stderr).not.toContain(" at ");
  }
});
