/**
 * The log budget of everything a trigger makes the watcher write. The bot's container writes
 * triggers at will, so each line one causes (claimed, rejected, superseded, sent again, Docker
 * away, the lock busy, a status or history write that failed) and each history line for a
 * trigger that did not run is counted against one budget: at most `max` per window of
 * `windowMs` (20 a minute by default), the summary of what was left out included.
 */

import type { Fields, Logger } from "../log.ts";

/**
 * Counts events against a budget per window: `take` says whether this one may be logged and,
 * once per window, how many were suppressed in the window before.
 */
export class LogBudget {
  private windowStart = -Infinity;
  private used = 0;
  private suppressed = 0;

  constructor(private readonly max: number, private readonly windowMs: number) {}

  take(now: number): { ok: boolean; suppressedBefore: number } {
    const suppressedBefore = this.roll(now);
    if (this.used < this.max) {
      this.used++;
      return { ok: true, suppressedBefore };
    }
    this.suppressed++;
    return { ok: false, suppressedBefore };
  }

  /** Ends the window if it is over; returns how many were suppressed in it (0 otherwise). */
  roll(now: number): number {
    if (now - this.windowStart < this.windowMs) return 0;
    const suppressed = this.suppressed;
    this.windowStart = now;
    this.used = 0;
    this.suppressed = 0;
    return suppressed;
  }
}

/** A Logger whose every line takes the trigger budget; lines over it are counted, not written. */
export class TriggerLog implements Logger {
  private readonly budget: LogBudget;

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number,
    max: number,
    windowMs: number,
  ) {
    this.budget = new LogBudget(max, windowMs);
  }

  /**
   * Whether one more trigger-caused line (or history line) may be written. When a new window
   * starts after a suppressed one, the summary line is written first and takes a slot itself.
   */
  take(): boolean {
    const first = this.budget.take(this.now());
    if (first.suppressedBefore === 0) return first.ok;
    this.tellSuppressed(first.suppressedBefore);
    // The slot just taken went to the summary; the line needs one more.
    return first.ok && this.budget.take(this.now()).ok;
  }

  /** Ends the window if it is over, logging how many it left out (that line takes a slot). */
  flushSuppressed(): void {
    const suppressed = this.budget.roll(this.now());
    if (suppressed === 0) return;
    this.budget.take(this.now());
    this.tellSuppressed(suppressed);
  }

  debug(message: string, fields?: Fields): void {
    if (this.take()) this.logger.debug(message, fields);
  }
  info(message: string, fields?: Fields): void {
    if (this.take()) this.logger.info(message, fields);
  }
  warn(message: string, fields?: Fields): void {
    if (this.take()) this.logger.warn(message, fields);
  }
  error(message: string, fields?: Fields): void {
    if (this.take()) this.logger.error(message, fields);
  }

  private tellSuppressed(suppressed: number) {
    this.logger.warn("trigger lines left out of the log and history (over the budget)", {
      suppressed,
    });
  }
}
