// Is there a person at a terminal to ask? The one rule: stdin and stdout are terminals (consola draws its
// questions on stdout, so a redirected stdout would swallow them) and CI is not set.

export const isInteractive = (env: Record<string, string | undefined> = process.env): boolean =>
  Boolean(process.stdin.isTTY && process.stdout.isTTY) && !env.CI;
