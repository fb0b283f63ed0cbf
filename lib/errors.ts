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

/** A command that exists but whose work lands in a later release. */
export class NotBuiltError extends UserError {
  override name = "NotBuiltError";
  constructor(what: string) {
    super(`${what} is not built yet in this version of flashchat`, undefined, 3);
  }
}

export const isUserError = (e: unknown): e is UserError => e instanceof UserError;
