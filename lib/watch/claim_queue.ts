/**
 * The claims waiting for their turn: of several only the newest runs and the older ones are
 * superseded (told in the history); a claim the update could not take (Docker away, lock
 * busy) waits for its retry time, with a backoff that doubles while Docker stays away; a
 * rejected claim is told in the status file and the history, within a log budget so a flood
 * of triggers cannot flood the logs or the history.
 */

import type { Claim, TriggerInbox } from "../adapters/trigger_inbox.ts";
import type { Config } from "../config.ts";
import { errorText } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { MetricsSink } from "../metrics/recorder.ts";
import { elapsedMs, type StatusFile, type UpdateReport } from "../update/report.ts";
import type { Clock, StatusStore } from "../state.ts";
import { checkTrigger, peekRequestId, type TriggerRequest } from "./trigger.ts";
import { TriggerLog } from "./trigger_log.ts";

export { LogBudget } from "./trigger_log.ts";

export interface ClaimQueueDeps {
  inbox: TriggerInbox;
  status: StatusStore;
  clock: Clock;
  logger: Logger;
  /** Told every rejected trigger (absent: no metrics). */
  metrics?: MetricsSink;
}

export interface ClaimQueueOptions {
  /** First wait after Docker was unreachable; doubles up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
  /**
   * Lines a trigger causes (rejections, supersedes, Docker away, failed writes…) and history
   * lines of triggers that did not run, allowed per logWindowMs; the rest are counted.
   */
  maxRejectionLogs: number;
  logWindowMs: number;
}

export class ClaimQueue {
  /** Claims waiting for their turn, oldest first. Only the newest will run. */
  private waiting: Claim[] = [];
  /** Epoch ms before which a waiting claim is not tried again (Docker away, lock busy). */
  private retryAt = 0;
  private backoff: number;
  /** The claim last handed towards an update, while it waits for a retry. */
  private lastTried: string | null = null;
  /** Every line a trigger causes goes through it (the loop's too). */
  readonly triggerLog: TriggerLog;
  private rejectedCount = 0;
  private supersededCount = 0;

  constructor(
    private readonly deps: ClaimQueueDeps,
    private readonly config: Pick<Config, "container" | "allowedImages">,
    private readonly o: ClaimQueueOptions,
  ) {
    this.triggerLog = new TriggerLog(
      deps.logger,
      () => this.now(),
      o.maxRejectionLogs,
      o.logWindowMs,
    );
    this.backoff = o.backoffMs;
  }

  private get log() {
    return this.deps.logger;
  }

  private now(): number {
    return this.deps.clock.now().getTime();
  }

  /** Triggers rejected so far. */
  get rejected(): number {
    return this.rejectedCount;
  }

  /** Requests replaced by a newer one before they ran, so far. */
  get superseded(): number {
    return this.supersededCount;
  }

  get size(): number {
    return this.waiting.length;
  }

  /** Milliseconds until a waiting claim may be tried again (0: now). */
  msUntilRetry(): number {
    return Math.max(0, this.retryAt - this.now());
  }

  /** Whether a claim is waiting and its retry time has come. */
  retryDue(): boolean {
    return this.waiting.length > 0 && this.now() >= this.retryAt;
  }

  push(claim: Claim) {
    this.waiting.push(claim);
  }

  /**
   * Claims a killed watcher left behind. One that was handed to an update is done when the
   * journal recovery finished that update or the status file shows an update that started
   * after the hand-over; otherwise it waits again, so it is neither lost nor run twice.
   */
  async settleLeftovers(recovered: UpdateReport | null): Promise<void> {
    let claims: Claim[];
    try {
      claims = await this.deps.inbox.pending();
    } catch (err) {
      this.log.error("cannot read claimed triggers", { error: errorText(err) });
      return;
    }
    const status = await this.deps.status.read().catch(() => null);
    for (const claim of claims) {
      if (claim.startedAt === null) {
        this.waiting.push(claim);
        continue;
      }
      const requestId = peekRequestId(claim.content);
      const ran = recovered !== null ||
        (status !== null && status.finishedAt !== null &&
          ((requestId !== undefined && status.requestId === requestId) ||
            Date.parse(status.startedAt) >= claim.startedAt));
      if (ran) {
        this.log.info("trigger of an interrupted run was already handled", {
          claim: claim.stamp,
          requestId,
        });
        await this.deps.inbox.remove(claim).catch(() => {});
      } else {
        this.log.info("trigger of an interrupted run never started; it runs now", {
          claim: claim.stamp,
        });
        this.waiting.push(await this.deps.inbox.unmarkStarted(claim));
      }
    }
  }

  /**
   * The claim whose turn it is: the newest (the older ones are superseded and removed), or
   * null when none waits or the newest was tried moments ago and waits for its retry time.
   */
  async next(): Promise<Claim | null> {
    if (this.waiting.length === 0) return null;
    // Several requests in a row: the last one is what the caller wants now.
    const latest = this.waiting[this.waiting.length - 1];
    for (const older of this.waiting.slice(0, -1)) {
      await this.supersede(older, latest);
    }
    this.waiting = [latest];
    // The same request tried moments ago (Docker away, lock busy) waits for its retry time.
    if (latest.stamp === this.lastTried && this.now() < this.retryAt) return null;
    return latest;
  }

  /** The claim is being handed towards an update (a retry of it waits for its time). */
  tried(claim: Claim) {
    this.lastTried = claim.stamp;
  }

  /** The claim was handed to the update: `started` (marked in the inbox) replaces it. */
  started(started: Claim) {
    this.waiting = [started];
  }

  /** The update ran: the next Docker outage starts with the first backoff again. */
  resetBackoff() {
    this.backoff = this.o.backoffMs;
  }

  /** The claim is finished with: it leaves the queue and the claim folder. */
  async done(claim: Claim) {
    this.waiting = this.waiting.filter((c) => c.stamp !== claim.stamp);
    this.retryAt = 0;
    this.lastTried = null;
    await this.deps.inbox.remove(claim).catch((err) =>
      this.triggerLog.error("cannot remove the claimed trigger", { error: errorText(err) })
    );
  }

  /** Puts the claim back to waiting and tries again after `ms`. */
  async keep(claim: Claim, ms: number) {
    let kept = claim;
    try {
      kept = await this.deps.inbox.unmarkStarted(claim);
    } catch (err) {
      this.triggerLog.error("cannot put the trigger back", { error: errorText(err) });
    }
    this.waiting = this.waiting.map((c) => c.stamp === claim.stamp ? kept : c);
    this.retryAt = this.now() + ms;
  }

  /** Docker is away: the waiting claim is retried after the backoff, which doubles. Returns it. */
  backOff(): number {
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.o.maxBackoffMs);
    this.retryAt = this.now() + wait;
    return wait;
  }

  /** Tells the rejection in the status file (and, within the budget, log and history); done. */
  async reject(claim: Claim, err: unknown, request: TriggerRequest | null) {
    this.rejectedCount++;
    this.deps.metrics?.record({
      kind: "trigger_rejected",
      at: this.deps.clock.now().toISOString(),
    });
    const reason = errorText(err);
    const logged = this.triggerLog.take();
    if (logged) {
      this.log.warn("trigger rejected", { reason, kind: claim.content.kind, claim: claim.stamp });
    }
    // In a flood the status file still says why, but history keeps room for real updates.
    await this.writeStatus(this.statusFor(claim, request, "rejected", reason), logged);
    await this.done(claim);
  }

  /** Tells an unexpected failure of the claim's update in the status file and the history. */
  async fail(claim: Claim, request: TriggerRequest, error: string) {
    await this.writeStatus(this.statusFor(claim, request, "failed", error), true);
  }

  /** Ends the log budget's window if it is over, logging how many it left out. */
  flushSuppressed() {
    this.triggerLog.flushSuppressed();
  }

  /**
   * An older request that a newer one replaces before it ran: the history says so (with the
   * caller's request id), so a page waiting for that id learns it will not run. The status
   * file is left to the newer request, which writes it next.
   */
  private async supersede(older: Claim, newer: Claim) {
    this.supersededCount++;
    const olderId = peekRequestId(older.content);
    const newerId = peekRequestId(newer.content);
    // The same request sent again: the newer copy answers for it.
    if (olderId !== undefined && olderId === newerId) {
      this.triggerLog.debug("trigger sent again", { claim: older.stamp, by: newer.stamp });
      await this.deps.inbox.remove(older).catch(() => {});
      return;
    }
    const reason = `superseded by a newer request${newerId ? ` (${newerId})` : ""} before it ran`;
    let request: TriggerRequest | null = null;
    try {
      request = checkTrigger(older.content, this.config.allowedImages);
    } catch {
      // Invalid as well: the history line says only that it was superseded.
    }
    // Shares the rejections' budget: a flood of requests cannot flood the history either.
    if (this.triggerLog.take()) {
      this.log.info("trigger superseded by a newer one", { claim: older.stamp, by: newer.stamp });
      try {
        await this.deps.status.appendHistory(this.statusFor(older, request, "rejected", reason));
      } catch (err) {
        this.triggerLog.error("cannot write the history", { error: errorText(err) });
      }
    }
    await this.deps.inbox.remove(older).catch(() => {});
  }

  private statusFor(
    claim: Claim,
    request: TriggerRequest | null,
    state: "rejected" | "failed",
    error: string,
  ): StatusFile {
    const requestId = request?.requestId ?? peekRequestId(claim.content);
    const startedAt = new Date(claim.claimedAt).toISOString();
    const finishedAt = this.deps.clock.now().toISOString();
    return {
      id: `trg-${claim.stamp}`,
      ...(requestId ? { requestId } : {}),
      state,
      container: this.config.container,
      image: request?.image ?? null,
      previousImage: null,
      imageId: null,
      startedAt,
      finishedAt,
      // The bot was never touched.
      durationMs: elapsedMs(startedAt, finishedAt),
      downtimeMs: 0,
      error,
      warnings: [],
      steps: [],
    };
  }

  private async writeStatus(status: StatusFile, history: boolean) {
    try {
      await this.deps.status.write(status);
      if (history) await this.deps.status.appendHistory(status);
    } catch (err) {
      this.triggerLog.error("cannot write the status file", { error: errorText(err) });
    }
  }
}
