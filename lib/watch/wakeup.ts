/**
 * How the watch loop sleeps: until an event wakes it, a deadline passes, the periodic rescan
 * ticks, or the watch is stopped. Its timers run on the injected Clock.
 */

import type { Clock, Timer } from "../state.ts";

/** Wakes the loop from events, or lets it sleep until a deadline; abortable. */
export class Wakeup {
  private pending = false;
  private resolve: ((notified: boolean) => void) | null = null;

  constructor(private readonly clock: Clock) {}

  notify() {
    this.pending = true;
    this.resolve?.(true);
  }

  /** Ends a wait in progress as if its time had run out (the periodic rescan). */
  tick() {
    this.resolve?.(false);
  }

  /**
   * Resolves true when notified (or already notified), false after `ms` (Infinity: only a
   * tick ends it), on a tick, or on abort.
   */
  async wait(ms: number, signal: AbortSignal): Promise<boolean> {
    if (this.pending) {
      this.pending = false;
      return true;
    }
    if (signal.aborted) return false;
    let timer: Timer | undefined;
    let onAbort: (() => void) | undefined;
    const notified = await new Promise<boolean>((resolve) => {
      this.resolve = resolve;
      if (Number.isFinite(ms)) timer = this.clock.after(Math.max(0, ms), () => resolve(false));
      onAbort = () => resolve(false);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    timer?.cancel();
    signal.removeEventListener("abort", onAbort!);
    this.resolve = null;
    this.pending = false;
    return notified;
  }
}

/**
 * Calls `fire` every `periodMs` until cancelled (like setInterval, on the injected clock: the
 * next period is counted from when the last one fired).
 */
export function every(clock: Clock, periodMs: number, fire: () => void): Timer {
  let timer: Timer;
  let cancelled = false;
  const schedule = () => {
    timer = clock.after(periodMs, () => {
      if (cancelled) return;
      schedule();
      fire();
    });
  };
  schedule();
  return {
    cancel: () => {
      cancelled = true;
      timer.cancel();
    },
  };
}
