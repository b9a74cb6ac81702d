/**
 * The watch loop: finds the trigger the bot writes, claims it, validates it as untrusted
 * input, and runs the same update as `hyperbot-ops update`, one at a time.
 *
 *   start: heartbeat, then recover what a killed process left in the journal (before anything
 *          else), then settle claims a killed watcher left, then look for a trigger at once.
 *   loop:  inotify events on dataDir wake it; a rescan every rescanMs is the safety net
 *          (events missed, folder removed and recreated). Events are debounced (debounceMs of
 *          quiet, at most maxDelayMs after the first) so a burst of writes is one claim of the
 *          last content. Of several claims only the newest runs; the others are superseded.
 *   stop:  the signal stops it from taking triggers; an update in progress runs to its end.
 */

import { basename } from "node:path";
import type { Claim, TriggerInbox } from "../adapters/trigger_inbox.ts";
import { TRIGGER_FILE } from "../adapters/files.ts";
import type { FolderWatch, FolderWatcher } from "../adapters/fs_watcher.ts";
import type { Config } from "../config.ts";
import { describeError, DockerError, LockedError, RejectedError } from "../errors.ts";
import { HEARTBEAT_INTERVAL_MS, type HeartbeatStore, type WatchState } from "./heartbeat.ts";
import type { Logger } from "../log.ts";
import type { StatusFile, UpdateReport } from "../update/report.ts";
import type { Clock, StatusStore } from "../state.ts";
import { checkTrigger, peekRequestId, type TriggerRequest } from "./trigger.ts";
import type { UpdateRequest } from "../update/run.ts";

export interface WatchDeps {
  inbox: TriggerInbox;
  watcher: FolderWatcher;
  clock: Clock;
  /** The watch logger (monitor.log). The update logs through its own. */
  logger: Logger;
  heartbeat: HeartbeatStore;
  status: StatusStore;
  /** Runs one update (runUpdate with the real deps). */
  update(request: UpdateRequest): Promise<UpdateReport>;
  /** recoverFromJournal with the real deps. */
  recover(): Promise<UpdateReport | null>;
  /** Checks that the Docker daemon answers. Throws DockerError when it does not. */
  ping(): Promise<void>;
  pid: number;
}

export interface WatchOptions {
  /** Quiet time after the last event before claiming. */
  debounceMs: number;
  /** Longest wait from the first event of a burst to the claim. */
  maxDelayMs: number;
  /** Interval of the safety-net rescan. */
  rescanMs: number;
  /** Rescan interval while dataDir is missing. */
  missingDirRescanMs: number;
  heartbeatMs: number;
  /** First wait after Docker was unreachable; doubles up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
  /** Wait before trying again when another update holds the lock. */
  lockRetryMs: number;
  /** Rejection log lines (and history lines) allowed per logWindowMs; the rest are counted. */
  maxRejectionLogs: number;
  logWindowMs: number;
}

export const DEFAULT_WATCH_OPTIONS: WatchOptions = {
  debounceMs: 50,
  maxDelayMs: 80,
  // Detection is inotify's (~55 ms); the rescan only catches missed events, and shares its
  // wake-up with the heartbeat.
  rescanMs: HEARTBEAT_INTERVAL_MS,
  missingDirRescanMs: 250,
  heartbeatMs: HEARTBEAT_INTERVAL_MS,
  backoffMs: 1_000,
  maxBackoffMs: 30_000,
  lockRetryMs: 2_000,
  maxRejectionLogs: 20,
  logWindowMs: 60_000,
};

/** What a watch run did, for tests and the exit log line. */
export interface WatchSummary {
  updates: number;
  rejected: number;
  superseded: number;
}

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

/** Wakes the loop from events, or lets it sleep until a deadline; abortable. */
class Wakeup {
  private pending = false;
  private resolve: ((notified: boolean) => void) | null = null;

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
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const notified = await new Promise<boolean>((resolve) => {
      this.resolve = resolve;
      if (Number.isFinite(ms)) timer = setTimeout(() => resolve(false), Math.max(0, ms));
      onAbort = () => resolve(false);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort!);
    this.resolve = null;
    this.pending = false;
    return notified;
  }
}

/** Runs the watch loop until `signal` aborts. Returns when no update is running any more. */
export async function runWatch(
  deps: WatchDeps,
  config: Config,
  signal: AbortSignal,
  options: Partial<WatchOptions> = {},
): Promise<WatchSummary> {
  return await new WatchLoop(deps, config, signal, { ...DEFAULT_WATCH_OPTIONS, ...options }).run();
}

class WatchLoop {
  private state: WatchState = "starting";
  private readonly startedAt: string;
  private readonly wake = new Wakeup();
  private readonly rejectionLogs: LogBudget;
  private readonly summary: WatchSummary = { updates: 0, rejected: 0, superseded: 0 };
  private folder: FolderWatch | null = null;
  private folderEnded = false;
  private folderId: string | null = null;
  private folderMissingLogged = false;
  /** Claims waiting for their turn, oldest first. Only the newest will run. */
  private waiting: Claim[] = [];
  /** Epoch ms before which a waiting claim is not tried again (Docker away, lock busy). */
  private retryAt = 0;
  private backoff: number;
  /** The claim last handed towards an update, while it waits for a retry. */
  private lastTried: string | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private heartbeatWriting: Promise<void> = Promise.resolve();
  private heartbeatFailed = false;

  constructor(
    private readonly deps: WatchDeps,
    private readonly config: Config,
    private readonly signal: AbortSignal,
    private readonly o: WatchOptions,
  ) {
    this.startedAt = deps.clock.now().toISOString();
    this.rejectionLogs = new LogBudget(o.maxRejectionLogs, o.logWindowMs);
    this.backoff = o.backoffMs;
  }

  private get log() {
    return this.deps.logger;
  }

  private now(): number {
    return this.deps.clock.now().getTime();
  }

  async run(): Promise<WatchSummary> {
    this.log.info("watch starting", {
      pid: this.deps.pid,
      dataDir: this.config.dataDir,
      stateDir: this.config.stateDir,
      container: this.config.container,
    });
    await this.setState("starting");
    this.heartbeatTimer = this.startTicker();
    try {
      const recovered = await this.recover();
      if (recovered !== undefined) {
        await this.settleLeftoverClaims(recovered);
        await this.loop();
      }
    } finally {
      clearInterval(this.heartbeatTimer);
      await this.folder?.close();
      await this.setState("stopped");
      await this.heartbeatWriting;
      this.log.info("watch stopped", { ...this.summary });
    }
    return this.summary;
  }

  /**
   * One timer for the heartbeat and the safety-net rescan, so an idle watcher wakes once per
   * period for both (each wake-up of the runtime costs CPU: see bench/RESULTS.md).
   */
  private startTicker(): ReturnType<typeof setInterval> {
    const period = Math.min(this.o.rescanMs, this.o.heartbeatMs);
    const beatEvery = Math.max(1, Math.round(this.o.heartbeatMs / period));
    const rescanEvery = Math.max(1, Math.round(this.o.rescanMs / period));
    let ticks = 0;
    return setInterval(() => {
      ticks++;
      if (ticks % beatEvery === 0) this.beat();
      if (ticks % rescanEvery === 0) this.wake.tick();
    }, period);
  }

  // ---- start -------------------------------------------------------------------------

  /** Recovers the journal, retrying while Docker is away or the lock is busy. Undefined if stopped. */
  private async recover(): Promise<UpdateReport | null | undefined> {
    await this.setState("recovering");
    let wait = this.o.backoffMs;
    while (!this.signal.aborted) {
      try {
        const report = await this.deps.recover();
        if (report) {
          this.log.info("recovered an interrupted update", {
            update: report.id,
            outcome: report.outcome,
            image: report.image,
            error: report.error,
          });
        }
        return report;
      } catch (err) {
        const { message } = describeError(err);
        const why = err instanceof LockedError
          ? "another update holds the lock"
          : "recovery failed";
        this.log.warn(`${why}; retrying`, { error: message, retryInMs: wait });
      }
      await this.wake.wait(wait, this.signal);
      wait = Math.min(wait * 2, this.o.maxBackoffMs);
    }
    return undefined;
  }

  /**
   * An update whose rollback could not finish (the Docker daemon failed under it) keeps its
   * journal, and the bot may be stopped: try again on every rescan until it is done, rather
   * than only at the next start.
   */
  private async retryUnfinished(): Promise<void> {
    try {
      const report = await this.deps.recover();
      if (report) {
        this.log.warn("finished an update that was left unfinished in the journal", {
          update: report.id,
          outcome: report.outcome,
          error: report.error,
        });
      }
    } catch (err) {
      this.log.warn("an unfinished update is still in the journal; trying again later", {
        error: describeError(err).message,
      });
    }
  }

  /**
   * Claims a killed watcher left behind. One that was handed to an update is done when the
   * journal recovery finished that update or the status file shows an update that started
   * after the hand-over; otherwise it waits again, so it is neither lost nor run twice.
   */
  private async settleLeftoverClaims(recovered: UpdateReport | null): Promise<void> {
    let claims: Claim[];
    try {
      claims = await this.deps.inbox.pending();
    } catch (err) {
      this.log.error("cannot read claimed triggers", { error: describeError(err).message });
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

  // ---- loop --------------------------------------------------------------------------

  private async loop(): Promise<void> {
    await this.setState("idle");
    // A trigger written while we were down, or claims waiting, are looked at at once.
    let due = true;
    while (!this.signal.aborted) {
      if (!due) {
        await this.checkFolder();
        // While the folder is there, the ticker's rescan ends the wait (no timer of our own).
        const interval = this.folderId === null ? this.o.missingDirRescanMs : Infinity;
        const timeout = this.waiting.length > 0
          ? Math.min(interval, Math.max(0, this.retryAt - this.now()))
          : interval;
        const notified = await this.wake.wait(timeout, this.signal);
        if (this.signal.aborted) break;
        if (notified) {
          await this.debounce();
          if (this.signal.aborted) break;
        } else {
          this.flushSuppressed();
          await this.retryUnfinished();
          await this.checkFolder();
          await this.folder?.unstall();
          const retryDue = this.waiting.length > 0 && this.now() >= this.retryAt;
          if (!retryDue && !(await this.deps.inbox.hasTrigger().catch(() => false))) continue;
        }
      }
      due = false;
      await this.processOnce();
    }
    await this.setState("stopping");
  }

  /** Waits until events have been quiet for debounceMs, at most maxDelayMs in all. */
  private async debounce(): Promise<void> {
    const deadline = this.now() + this.o.maxDelayMs;
    while (!this.signal.aborted) {
      const left = deadline - this.now();
      if (left <= 0) return;
      const again = await this.wake.wait(Math.min(this.o.debounceMs, left), this.signal);
      if (!again) return;
    }
  }

  /** (Re)starts the folder watch when it ended or dataDir was recreated. */
  private async checkFolder(): Promise<void> {
    const id = await this.deps.inbox.dataDirIdentity();
    if (id === null) {
      if (this.folder) {
        await this.folder.close();
        this.folder = null;
      }
      this.folderId = null;
      if (!this.folderMissingLogged) {
        this.log.warn("data folder is missing; waiting for it to come back", {
          dataDir: this.config.dataDir,
        });
        this.folderMissingLogged = true;
      }
      return;
    }
    if (this.folder && !this.folderEnded && id === this.folderId) return;
    await this.folder?.close();
    this.folder = null;
    try {
      const folder = this.deps.watcher.watch(this.config.dataDir, (paths) => this.onEvent(paths));
      this.folder = folder;
      this.folderEnded = false;
      folder.ended.then(() => {
        if (this.folder === folder) {
          this.folderEnded = true;
          // Look again soon: the folder may have been removed and recreated.
          this.wake.notify();
        }
      });
      if (this.folderMissingLogged || (this.folderId !== null && this.folderId !== id)) {
        this.log.info("data folder is back; watching it again", { dataDir: this.config.dataDir });
        // A trigger may have been written before the watch started.
        this.wake.notify();
      }
      this.folderId = id;
      this.folderMissingLogged = false;
    } catch (err) {
      this.log.debug("cannot watch the data folder yet", { error: describeError(err).message });
      this.folderId = null;
    }
  }

  private onEvent(paths: string[]) {
    // Our own status and history writes land in the same folder: only the trigger matters.
    if (
      paths.length === 0 ||
      paths.some((p) => basename(p) === TRIGGER_FILE || p === this.config.dataDir)
    ) {
      this.wake.notify();
    }
  }

  /** Claims the trigger if there is one and runs the newest waiting request. */
  private async processOnce(): Promise<void> {
    try {
      const claim = await this.deps.inbox.claim();
      if (claim) {
        this.log.debug("claimed trigger", { claim: claim.stamp, kind: claim.content.kind });
        this.waiting.push(claim);
      }
    } catch (err) {
      this.log.error("cannot claim the trigger", { error: describeError(err).message });
    }
    if (this.waiting.length === 0) return;
    // Several requests in a row: the last one is what the caller wants now.
    const latest = this.waiting[this.waiting.length - 1];
    for (const older of this.waiting.slice(0, -1)) {
      await this.supersede(older, latest);
    }
    this.waiting = [latest];
    // The same request tried moments ago (Docker away, lock busy) waits for its retry time.
    if (latest.stamp === this.lastTried && this.now() < this.retryAt) return;
    await this.handle(latest);
  }

  private async handle(claim: Claim): Promise<void> {
    let request: TriggerRequest;
    try {
      request = checkTrigger(claim.content, this.config.allowedImages);
    } catch (err) {
      await this.reject(claim, err, null);
      return;
    }
    this.lastTried = claim.stamp;
    try {
      await this.deps.ping();
    } catch (err) {
      await this.dockerAway(err);
      return;
    }
    await this.setState("updating");
    let started = claim;
    try {
      started = await this.deps.inbox.markStarted(claim, this.now());
      this.waiting = [started];
      this.log.info("update requested by trigger", {
        image: request.image,
        requestId: request.requestId,
        force: request.force || undefined,
        claim: claim.stamp,
      });
      const report = await this.deps.update({
        image: request.image,
        force: request.force,
        requestId: request.requestId,
        source: "trigger",
      });
      this.summary.updates++;
      this.backoff = this.o.backoffMs;
      const level = report.outcome === "updated" || report.outcome === "unchanged"
        ? "info"
        : "error";
      this.log[level](`update ${report.outcome}`, {
        update: report.id,
        requestId: report.requestId,
        image: report.image,
        error: report.error,
      });
      await this.done(started);
    } catch (err) {
      if (err instanceof LockedError) {
        this.log.info("another update holds the lock; the trigger waits", {
          error: describeError(err).message,
        });
        await this.keep(started, this.o.lockRetryMs);
        await this.setState("waiting_for_lock");
        return;
      }
      if (err instanceof RejectedError) {
        await this.reject(started, err, request);
        return;
      }
      if (err instanceof DockerError) {
        await this.keep(started, 0);
        await this.dockerAway(err);
        return;
      }
      // A bug or an unexpected failure: report it and drop the trigger rather than loop on it.
      this.log.error("update failed unexpectedly", { error: describeError(err).message });
      await this.writeStatus(
        this.statusFor(claim, request, "failed", describeError(err).message),
        true,
      );
      await this.done(started);
    }
    if (this.state === "updating") await this.setState("idle");
  }

  private async done(claim: Claim) {
    this.waiting = this.waiting.filter((c) => c.stamp !== claim.stamp);
    this.retryAt = 0;
    this.lastTried = null;
    await this.deps.inbox.remove(claim).catch((err) =>
      this.log.error("cannot remove the claimed trigger", { error: describeError(err).message })
    );
  }

  /** Puts the claim back to waiting and tries again after `ms`. */
  private async keep(claim: Claim, ms: number) {
    let kept = claim;
    try {
      kept = await this.deps.inbox.unmarkStarted(claim);
    } catch (err) {
      this.log.error("cannot put the trigger back", { error: describeError(err).message });
    }
    this.waiting = this.waiting.map((c) => c.stamp === claim.stamp ? kept : c);
    this.retryAt = this.now() + ms;
  }

  private async dockerAway(err: unknown) {
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.o.maxBackoffMs);
    this.retryAt = this.now() + wait;
    this.log.warn("Docker daemon unreachable; the trigger is kept and retried", {
      error: describeError(err).message,
      retryInMs: wait,
    });
    await this.setState("waiting_for_docker");
  }

  private async reject(claim: Claim, err: unknown, request: TriggerRequest | null) {
    this.summary.rejected++;
    const reason = describeError(err).message;
    const logged = this.takeLogBudget();
    if (logged) {
      this.log.warn("trigger rejected", { reason, kind: claim.content.kind, claim: claim.stamp });
    }
    // In a flood the status file still says why, but history keeps room for real updates.
    await this.writeStatus(this.statusFor(claim, request, "rejected", reason), logged);
    await this.done(claim);
    if (this.state !== "idle") await this.setState("idle");
  }

  /**
   * An older request that a newer one replaces before it ran: the history says so (with the
   * caller's request id), so a page waiting for that id learns it will not run. The status
   * file is left to the newer request, which writes it next.
   */
  private async supersede(older: Claim, newer: Claim) {
    this.summary.superseded++;
    const olderId = peekRequestId(older.content);
    const newerId = peekRequestId(newer.content);
    // The same request sent again: the newer copy answers for it.
    if (olderId !== undefined && olderId === newerId) {
      this.log.debug("trigger sent again", { claim: older.stamp, by: newer.stamp });
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
    if (this.takeLogBudget()) {
      this.log.info("trigger superseded by a newer one", { claim: older.stamp, by: newer.stamp });
      try {
        await this.deps.status.appendHistory(this.statusFor(older, request, "rejected", reason));
      } catch (err) {
        this.log.error("cannot write the history", { error: describeError(err).message });
      }
    }
    await this.deps.inbox.remove(older).catch(() => {});
  }

  /**
   * Whether one more rejected or superseded trigger may go to the log and history; when a new
   * window starts, logs how many the window before left out.
   */
  private takeLogBudget(): boolean {
    const budget = this.rejectionLogs.take(this.now());
    if (budget.suppressedBefore > 0) {
      this.log.warn("rejected or superseded triggers left out of the log and history", {
        suppressed: budget.suppressedBefore,
      });
    }
    return budget.ok;
  }

  private flushSuppressed() {
    const suppressed = this.rejectionLogs.roll(this.now());
    if (suppressed > 0) {
      this.log.warn("rejected or superseded triggers left out of the log and history", {
        suppressed,
      });
    }
  }

  private statusFor(
    claim: Claim,
    request: TriggerRequest | null,
    state: "rejected" | "failed",
    error: string,
  ): StatusFile {
    const requestId = request?.requestId ?? peekRequestId(claim.content);
    return {
      id: `trg-${claim.stamp}`,
      ...(requestId ? { requestId } : {}),
      state,
      container: this.config.container,
      image: request?.image ?? null,
      previousImage: null,
      imageId: null,
      startedAt: new Date(claim.claimedAt).toISOString(),
      finishedAt: this.deps.clock.now().toISOString(),
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
      this.log.error("cannot write the status file", { error: describeError(err).message });
    }
  }

  // ---- heartbeat ---------------------------------------------------------------------

  private async setState(state: WatchState) {
    if (state !== this.state) this.log.debug("watch state", { state });
    this.state = state;
    this.beat();
    await this.heartbeatWriting;
  }

  private beat() {
    const heartbeat = {
      timestamp: this.deps.clock.now().toISOString(),
      pid: this.deps.pid,
      state: this.state,
      startedAt: this.startedAt,
      intervalMs: this.o.heartbeatMs,
    };
    this.heartbeatWriting = this.heartbeatWriting.then(() => this.deps.heartbeat.write(heartbeat))
      .then(
        () => {
          this.heartbeatFailed = false;
        },
        (err) => {
          if (!this.heartbeatFailed) {
            this.log.error("cannot write the heartbeat", { error: describeError(err).message });
          }
          this.heartbeatFailed = true;
        },
      );
  }
}
