/**
 * Stopping the watcher in time: the threat model promises exit within 2 s of SIGTERM, but a
 * background task (a notification send, a Docker ping) can take 5-10 s. What it has not done
 * by then stays for the next start (queued messages wait in the outbox).
 */

import type { Clock } from "../state.ts";

/** How long the watcher waits for its background tasks after SIGTERM. */
export const BACKGROUND_STOP_MS = 1_000;

/**
 * Waits until every task has settled, or `ms` on `clock` has passed, whichever comes first.
 * Returns true when they all settled. Never throws.
 */
export async function settleWithin(
  tasks: Promise<unknown>[],
  ms: number,
  clock: Clock,
): Promise<boolean> {
  let timer: { cancel(): void } | null = null;
  const timeout = new Promise<false>((resolve) => {
    timer = clock.after(ms, () => resolve(false));
  });
  try {
    return await Promise.race([Promise.allSettled(tasks).then(() => true), timeout]);
  } finally {
    (timer as { cancel(): void } | null)?.cancel();
  }
}
