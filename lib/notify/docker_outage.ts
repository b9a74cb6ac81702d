/**
 * The watcher's view of the Docker daemon for notifications: unreachable for OUTAGE_MS is said
 * once, and that it is back is said once more (only after the first was said). Pure: the watch
 * command feeds it the result of a ping every 30 s.
 */

import type { Notifier } from "./notifier.ts";

export const OUTAGE_MS = 5 * 60_000;
/** How often the watcher looks at the daemon for this. */
export const DOCKER_CHECK_MS = 30_000;

export class DockerOutage {
  private downSince: number | null = null;
  private reported = false;

  /**
   * One look at the daemon. Returns the event to send, if any: "unreachable" (with when it
   * went away) after OUTAGE_MS without an answer, "reachable" when it answers again after that.
   */
  observe(ok: boolean, now: number): { event: "unreachable" | "reachable"; since: number } | null {
    if (ok) {
      const since = this.downSince;
      const wasReported = this.reported;
      this.downSince = null;
      this.reported = false;
      return wasReported && since !== null ? { event: "reachable", since } : null;
    }
    this.downSince ??= now;
    if (!this.reported && now - this.downSince >= OUTAGE_MS) {
      this.reported = true;
      return { event: "unreachable", since: this.downSince };
    }
    return null;
  }
}

/**
 * The watcher's Docker watch for notifications: pings the daemon every `everyMs` until
 * `signal` aborts, and tells `notifier` when it has been away OUTAGE_MS and when it is back.
 */
export async function watchDockerForNotify(
  notifier: Notifier,
  ping: () => Promise<unknown>,
  signal: AbortSignal,
  everyMs = DOCKER_CHECK_MS,
  now: () => number = Date.now,
): Promise<void> {
  const outage = new DockerOutage();
  let lastError = "";
  while (!signal.aborted) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, everyMs);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    });
    if (signal.aborted) break;
    let ok = true;
    try {
      await ping();
    } catch (err) {
      ok = false;
      lastError = err instanceof Error ? err.message : String(err);
    }
    const change = outage.observe(ok, now());
    if (change?.event === "unreachable") {
      await notifier.emit("docker_unreachable", {
        detail: `no answer since ${new Date(change.since).toISOString()}: ${
          notifier.scrub(lastError).slice(0, 300)
        }`,
      });
    } else if (change?.event === "reachable") {
      await notifier.emit("docker_reachable", {
        detail: `it was unreachable since ${new Date(change.since).toISOString()}`,
      });
    }
  }
}
