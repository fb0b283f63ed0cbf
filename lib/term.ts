// Terminals: is there a person to ask (stdin and stdout are terminals - consola draws its questions on stdout,
// so a redirected stdout would swallow them - and CI is not set), is colour on for a stream, and a y/N question.

export const isInteractive = (env: Record<string, string | undefined> = process.env): boolean =>
  Boolean(process.stdin.isTTY && process.stdout.isTTY) && !env.CI;

/**
 * Colour on or off for a stream: COLOR_OUTPUT (config) and a terminal are needed; NO_COLOR (any non-empty value)
 * turns it off. https://no-color.org
 */
export function resolveColor(colorOutput: boolean, isTTY: boolean | undefined, env: Record<string, string | undefined> = process.env): boolean {
  if (env.NO_COLOR) return false;
  return colorOutput && Boolean(isTTY);
}

/** A person to ask a y/N question on stderr: stdin and stderr are terminals and CI is not set. */
export const canAskOnStderr = (env: Record<string, string | undefined> = process.env): boolean =>
  Boolean(process.stdin.isTTY && process.stderr.isTTY) && !env.CI;

/** Ask a yes/no question on the terminal (stderr); Enter, Ctrl-C and Ctrl-D answer no. */
export async function askYesNo(question: string): Promise<boolean> {
  const { createInterface } = await import("node:readline");
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  return await new Promise<boolean>((done) => {
    let answered = false;
    const finish = (yes: boolean) => {
      if (answered) return;
      answered = true;
      rl.close();
      done(yes);
    };
    rl.on("SIGINT", () => {
      process.stderr.write("\n");
      finish(false);
    });
    rl.on("close", () => finish(false));
    rl.question(`${question} `, (a) => finish(/^\s*y(es)?\s*$/i.test(a)));
  });
}
