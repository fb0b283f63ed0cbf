// Errors meant for the user: one clear line (plus an optional hint), no stack trace.
export class UserError extends Error {
  override name = "UserError";
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** A bad setting (file, env var or flag): exit code 2, as for usage errors. */
export class ConfigError extends UserError {
  override name = "ConfigError";
  constructor(message: string, hint?: string) {
    super(message, hint, 2);
  }
}

export const isUserError = (e: unknown): e is UserError => e instanceof UserError;

/** The user stopped the command (Ctrl-C): exit 130 with no message, as a shell expects. */
export class Interrupted extends UserError {
  override name = "Interrupted";
  constructor() {
    super("interrupted", undefined, 130);
  }
}
