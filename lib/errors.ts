/**
 * Typed errors. Library code throws these; `main.ts` turns them into
 * `error: <what failed>, '<object>': <why>` plus an optional `hint:` line and an exit code.
 *
 * Exit codes (a contract, documented in the README):
 *   0 success / unchanged, 1 update failed or rolled back, 2 usage or rejected input,
 *   3 configuration error, 4 Docker unreachable or Docker error, 5 another update holds the lock.
 */

/** What each exit code means, for every command (a command's help says what it means there). */
export const EXIT_CODES: Record<number, string> = {
  0: "success, or nothing to change",
  1: "update failed or rolled back, check failed",
  2: "usage error or rejected input (nothing was changed)",
  3: "configuration error",
  4: "Docker unreachable or a Docker error",
  5: "another update (or watcher) holds the lock",
};

export interface ErrorDetails {
  /** The object the error is about: a file, a key, an image reference, a container. */
  object?: string;
  /** One line that tells the operator what to do next. */
  hint?: string;
  cause?: unknown;
}

export abstract class OpsError extends Error {
  abstract readonly exitCode: number;
  readonly object?: string;
  readonly hint?: string;

  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.object = details.object;
    this.hint = details.hint;
  }
}

/** Bad flags or arguments. */
export class UsageError extends OpsError {
  readonly exitCode = 2;
}

/** Input refused before anything was touched: a bad image reference, a repository not allowed, a hostile trigger. */
export class RejectedError extends OpsError {
  readonly exitCode = 2;
}

/** A malformed config file or an unknown key. */
export class ConfigError extends OpsError {
  readonly exitCode = 3;
}

/** The Docker daemon is unreachable or answered with an error. */
export class DockerError extends OpsError {
  readonly exitCode = 4;
  /** HTTP status of the Engine API answer, when there was one. */
  readonly status?: number;
  constructor(message: string, details: ErrorDetails & { status?: number } = {}) {
    super(message, details);
    this.status = details.status;
  }
}

/** Another update holds the lock. */
export class LockedError extends OpsError {
  readonly exitCode = 5;
}

/** The update could not be carried out (the bot was left on the old version). */
export class UpdateFailedError extends OpsError {
  readonly exitCode = 1;
}

/**
 * A request that cannot be carried out, found before anything was touched, that is no update
 * at all (`--rollback` with nothing to go back to): exit 1, and no status file, history line,
 * record or `updates_total{outcome="failed"}` (a mistyped command must not fire the fleet's
 * 'failed last update' alert).
 */
export class NothingToDoError extends UpdateFailedError {}

/**
 * The one way an error becomes text, for the operator, the logs, the status file and reports:
 * `<what failed>, '<object>': <why>`, following the chain of causes (a cause whose message the
 * error already quotes is not repeated). Anything that is not an Error is shown with String().
 */
export function errorText(err: unknown, depth = 0): string {
  if (!(err instanceof Error)) return String(err);
  const object = err instanceof OpsError && err.object ? `, '${err.object}'` : "";
  const cause = err.cause;
  const quoted = cause instanceof Error ? err.message.includes(cause.message) : cause === undefined;
  const why = quoted || depth >= 4 ? "" : `: ${errorText(cause, depth + 1)}`;
  return `${err.message}${object}${why}`;
}

/**
 * The text a report keeps of an error that ended an update: errorText, and the hint in
 * parentheses. A report (the status file, history, `update` output, notifications) has one error
 * text and no hint line, and the hint is what tells the operator (or the bot's page) what to do.
 */
export function errorWithHint(err: unknown): string {
  const hint = err instanceof OpsError ? err.hint : undefined;
  return hint ? `${errorText(err)} (${hint})` : errorText(err);
}

/** What main.ts prints and returns for an error: its text, its hint, its exit code. */
export function describeError(err: unknown): { message: string; hint?: string; exitCode: number } {
  if (err instanceof OpsError) {
    return { message: errorText(err), hint: err.hint, exitCode: err.exitCode };
  }
  return { message: errorText(err), exitCode: 1 };
}
