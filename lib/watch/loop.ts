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
 *
 * This file is the loop that hands claims to the update. Its parts: heartbeat.ts (the
 * watcher's state and heartbeat), folder_watch.ts (the inotify watch on dataDir),
 * claim_queue.ts (waiting claims, retry and backoff, supersede, rejections and their log
 * budget), wakeup.ts (sleeping until an event, a deadline or the rescan). Every timer runs on
 * the injected Clock.
 */

import type { Claim, TriggerInbox } from "../adapters/trigger_inbox.ts";
import type { FolderWatcher } from "../adapters/fs_watcher.ts";
import type { Config } from "../config.ts";
import { DockerError, errorText, LockedError, RejectedError } from "../errors.ts";
import {
  HEARTBEAT_INTERVAL_MS,
  type HeartbeatStore,
  HeartbeatWriter,
  type WatchState,
} from "./heartbeat.ts";
import type { Logger } from "../log.ts";
import type { MetricsSink } from "../metrics/recorder.ts";
import type { UpdateReport } from "../update/report.ts";
import type { Clock, StatusStore, Timer } from "../state.ts";
import { checkTrigger, type TriggerRequest } from "./trigger.ts";
import type { UpdateRequest } from "../update/run.ts";
import { ClaimQueue } from "./claim_queue.ts";
import { DataFolderWatch } from "./folder_watch.ts";
import { every, Wakeup } from "./wakeup.ts";

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
  /** Told every rejected trigger (absent: no metrics). */
  metrics?: MetricsSink;
  /** Checks that the Docker daemon answers. Throws DockerError when it does not. */
  ping(): Promise<void>;
  pid: number;
  /**
   * Memory upkeep when the watcher goes idle (after start-up, after an update); at most once
   * per IDLE_UPKEEP_EVERY_MS.
   */
  onIdle?(): void;
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

/** onIdle (the memory trim, 20-130 ms) runs at most this often, however often the loop idles. */
/** Paths of entries left in dataDir that are remembered as reported (then forgotten at once). */
const MAX_LEFT_REMEMBERED = 1_000;

export const IDLE_UPKEEP_EVERY_MS = 5 * 60_000;

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
  private readonly wake: Wakeup;
  private readonly heartbeat: HeartbeatWriter;
  private readonly folder: DataFolderWatch;
  private readonly queue: ClaimQueue;
  /** When onIdle last ran (epoch ms of the injected clock). */
  private idleUpkeepAt = -Infinity;
  private updates = 0;

  constructor(
    private readonly deps: WatchDeps,
    private readonly config: Config,
    private readonly signal: AbortSignal,
    private readonly o: WatchOptions,
  ) {
    this.heartbeat = new HeartbeatWriter(deps, o.heartbeatMs);
    this.wake = new Wakeup(deps.clock);
    this.folder = new DataFolderWatch(deps, config.dataDir, () => this.wake.notify());
    this.queue = new ClaimQueue(deps, config, o);
    // The bot makes these entries at will: each path is said once, within the trigger budget.
    const reported = new Set<string>();
    deps.inbox.reportLeftTo?.((path, reason) => {
      if (reported.has(path)) return;
      if (reported.size >= MAX_LEFT_REMEMBERED) reported.clear();
      reported.add(path);
      this.queue.triggerLog.warn("cannot remove an entry the bot made; it is left where it is", {
        path,
        reason,
      });
    });
  }

  private get log() {
    return this.deps.logger;
  }

  private now(): number {
    return this.deps.clock.now().getTime();
  }

  private get summary(): WatchSummary {
    return {
      updates: this.updates,
      rejected: this.queue.rejected,
      superseded: this.queue.superseded,
    };
  }

  private async setState(state: WatchState) {
    await this.heartbeat.setState(state);
    // The upkeep costs tens of milliseconds: a stream of triggers must not pay it each time.
    if (state === "idle" && this.now() - this.idleUpkeepAt >= IDLE_UPKEEP_EVERY_MS) {
      this.idleUpkeepAt = this.now();
      this.deps.onIdle?.();
    }
  }

  async run(): Promise<WatchSummary> {
    this.log.info("watch starting", {
      pid: this.deps.pid,
      dataDir: this.config.dataDir,
      stateDir: this.config.stateDir,
      container: this.config.container,
    });
    await this.setState("starting");
    const ticker = this.startTicker();
    try {
      const recovered = await this.recover();
      if (recovered !== undefined) {
        await this.queue.settleLeftovers(recovered);
        await this.loop();
      }
    } finally {
      ticker.cancel();
      await this.folder.close();
      await this.setState("stopped");
      await this.heartbeat.flushed();
      this.log.info("watch stopped", { ...this.summary });
    }
    return this.summary;
  }

  /**
   * One timer for the heartbeat and the safety-net rescan, so an idle watcher wakes once per
   * period for both (each wake-up of the runtime costs CPU: see bench/RESULTS.md).
   */
  private startTicker(): Timer {
    const period = Math.min(this.o.rescanMs, this.o.heartbeatMs);
    const beatEvery = Math.max(1, Math.round(this.o.heartbeatMs / period));
    const rescanEvery = Math.max(1, Math.round(this.o.rescanMs / period));
    let ticks = 0;
    return every(this.deps.clock, period, () => {
      ticks++;
      if (ticks % beatEvery === 0) this.heartbeat.beat();
      if (ticks % rescanEvery === 0) this.wake.tick();
    });
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
        const why = err instanceof LockedError
          ? "another update holds the lock"
          : "recovery failed";
        this.log.warn(`${why}; retrying`, { error: errorText(err), retryInMs: wait });
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
        error: errorText(err),
      });
    }
  }

  // ---- loop --------------------------------------------------------------------------

  private async loop(): Promise<void> {
    // The watch starts before the first look, so a trigger written between the two is not left
    // to the rescan.
    await this.folder.check();
    await this.setState("idle");
    // A trigger written while we were down, or claims waiting, are looked at at once.
    let due = true;
    while (!this.signal.aborted) {
      if (!due) {
        await this.folder.check();
        // While the folder is there, the ticker's rescan ends the wait (no timer of our own).
        const interval = this.folder.missing ? this.o.missingDirRescanMs : Infinity;
        const timeout = this.queue.size > 0
          ? Math.min(interval, this.queue.msUntilRetry())
          : interval;
        const notified = await this.wake.wait(timeout, this.signal);
        if (this.signal.aborted) break;
        if (notified) {
          await this.debounce();
          if (this.signal.aborted) break;
        } else {
          this.queue.flushSuppressed();
          await this.retryUnfinished();
          await this.folder.check();
          const retryDue = this.queue.retryDue();
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

  /** Claims the trigger if there is one and runs the newest waiting request. */
  private async processOnce(): Promise<void> {
    try {
      const claim = await this.deps.inbox.claim();
      // No line of its own: the rejection, the update or the wait that follows names the claim.
      if (claim) this.queue.push(claim);
    } catch (err) {
      this.queue.triggerLog.error("cannot claim the trigger", { error: errorText(err) });
    }
    const next = await this.queue.next();
    if (next) await this.handle(next);
  }

  /** Hands the claim to the update, or puts it back, or rejects it. */
  private async handle(claim: Claim): Promise<void> {
    let request: TriggerRequest;
    try {
      request = checkTrigger(claim.content, this.config.allowedImages);
    } catch (err) {
      await this.reject(claim, err, null);
      return;
    }
    this.queue.tried(claim);
    try {
      await this.deps.ping();
    } catch (err) {
      await this.dockerAway(err, claim);
      return;
    }
    await this.setState("updating");
    let started = claim;
    try {
      started = await this.deps.inbox.markStarted(claim, this.now());
      this.queue.started(started);
      this.queue.triggerLog.info("update requested by trigger", {
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
      this.updates++;
      this.queue.resetBackoff();
      const level = report.outcome === "updated" || report.outcome === "unchanged"
        ? "info"
        : "error";
      // An update that changed nothing is cheap to ask for again and again: its line takes the
      // trigger budget. One that changed the container (or failed to) is always logged.
      const log = report.outcome === "unchanged" || report.outcome === "rejected"
        ? this.queue.triggerLog
        : this.log;
      log[level](`update ${report.outcome}`, {
        update: report.id,
        requestId: report.requestId,
        image: report.image,
        error: report.error,
      });
      await this.queue.done(started);
    } catch (err) {
      if (err instanceof LockedError) {
        this.queue.triggerLog.info("another update holds the lock; the trigger waits", {
          claim: started.stamp,
          error: errorText(err),
        });
        await this.queue.keep(started, this.o.lockRetryMs);
        await this.setState("waiting_for_lock");
        return;
      }
      if (err instanceof RejectedError) {
        await this.reject(started, err, request);
        return;
      }
      if (err instanceof DockerError) {
        await this.queue.keep(started, 0);
        await this.dockerAway(err, started);
        return;
      }
      // A bug or an unexpected failure: report it and drop the trigger rather than loop on it.
      this.queue.triggerLog.error("update failed unexpectedly", { error: errorText(err) });
      await this.queue.fail(claim, request, errorText(err));
      await this.queue.done(started);
    }
    if (this.heartbeat.state === "updating") await this.setState("idle");
  }

  private async dockerAway(err: unknown, claim: Claim) {
    const wait = this.queue.backOff();
    this.queue.triggerLog.warn("Docker daemon unreachable; the trigger is kept and retried", {
      claim: claim.stamp,
      error: errorText(err),
      retryInMs: wait,
    });
    await this.setState("waiting_for_docker");
  }

  private async reject(claim: Claim, err: unknown, request: TriggerRequest | null) {
    await this.queue.reject(claim, err, request);
    if (this.heartbeat.state !== "idle") await this.setState("idle");
  }
}
