/**
 * Waiting in tests: poll until a condition holds, and when it never does, fail with what the
 * test was waiting for and what it saw last (a bare "timed out" is useless on a CI log).
 */

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface EventuallyOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Called once on timeout: what the world looked like (status file, process output...). */
  describe?: () => string | Promise<string>;
}

/**
 * Polls `check` until it returns a value other than null, undefined or false, and returns it.
 * A check that throws counts as "not yet"; its last error goes into the timeout message.
 */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | null | undefined | false>,
  options: EventuallyOptions = {},
): Promise<T> {
  const { timeoutMs = 60_000, intervalMs = 50, describe } = options;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== null && value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    await sleep(intervalMs);
  }
  let seen = "";
  if (describe) {
    try {
      seen = `\n--- last seen ---\n${await describe()}`;
    } catch (err) {
      seen = `\n--- last seen: could not describe: ${err}`;
    }
  }
  const lastError = last ? ` (last error: ${last})` : "";
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}${lastError}${seen}`, {
    cause: last,
  });
}

/** True when something (even a dangling symlink) exists at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
