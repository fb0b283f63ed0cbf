// Terminals: is there a person to ask (stdin and stdout are terminals - consola draws its questions on stdout,
// so a redirected stdout would swallow them - and CI is not set), and is colour on for a stream.

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
