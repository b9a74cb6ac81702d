/**
 * Keeps the counters and the metrics file up to date. Events (an update ended, a trigger was
 * refused, health ran) and refreshes (the watcher's heartbeat) are gathered for a short delay
 * (`delayMs`, well under the 1 s promise) and then applied in one step, under the lock every
 * process on this stateDir shares: read the counters, add the events, gather the rest (the
 * container, the heartbeat, the journal), write the metrics file atomically, write the
 * counters. Doing the file inside the lock means a slower process can never put an older
 * snapshot over a newer one, so a counter never goes backwards in the file.
 */

import { describeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Clock, Timer } from "../state.ts";
import { applyEvent, type Counters, type MetricsEvent } from "./counters.ts";
import { type MetricsSnapshot, renderExposition } from "./exposition.ts";

/** The counters in stateDir. */
export interface CounterStore {
  /**
   * Takes the lock every process on this stateDir shares (waits for it), reads the counters
   * (zeros when absent or unreadable), runs `fn`, writes the counters it returns when they
   * changed, releases. Throws when the lock or the write fails (the counters are then as before).
   */
  update(fn: (counters: Counters) => Promise<Counters>): Promise<void>;
  /** The counters now (zeros when absent or unreadable), without the lock. */
  read(): Promise<Counters>;
}

/** What the metrics show besides the counters, read fresh for every snapshot. */
export interface MetricsSources {
  /** The bot container; never throws (Docker away: not found, not running). */
  container(): Promise<MetricsSnapshot["container"]>;
  /** Epoch seconds of the watcher's last heartbeat, or null. */
  heartbeatAt(): Promise<number | null>;
  /** Whether the journal holds an unfinished update that no live process holds the lock for. */
  rollbackPending(): Promise<boolean>;
}

/** The node_exporter textfile. */
export interface MetricsFile {
  readonly path: string;
  /** Replaces the file atomically (temp file and rename in its folder), mode 0644. */
  write(text: string): Promise<void>;
}

/** What the update, the watch and health tell the metrics. Never throws, never waits long. */
export interface MetricsSink {
  /** Adds an event; it reaches the counters and the file within `delayMs`. */
  record(event: MetricsEvent): void;
}

export interface MetricsDeps {
  store: CounterStore;
  sources: MetricsSources;
  /** null: metricsFile is off (the counters are still kept, for `hyperbot-ops metrics`). */
  file: MetricsFile | null;
  clock: Clock;
  logger: Logger;
  /** hyperbot-ops' version, for build_info. */
  version: string;
}

/** How long events are gathered before they are written. */
export const METRICS_DELAY_MS = 200;

export class MetricsRecorder implements MetricsSink {
  private pending: MetricsEvent[] = [];
  private timer: Timer | null = null;
  private due: Promise<void> | null = null;
  private fire: (() => void) | null = null;
  private chain: Promise<void> = Promise.resolve();
  private failing = false;

  constructor(private readonly deps: MetricsDeps, private readonly delayMs = METRICS_DELAY_MS) {}

  record(event: MetricsEvent): void {
    this.pending.push(event);
    void this.schedule();
  }

  /**
   * Something the file shows besides the counters may have changed (a heartbeat, the
   * container): rewrite the file within `delayMs`. Nothing to do when the file is off.
   */
  refresh(): Promise<void> {
    return this.deps.file ? this.schedule() : Promise.resolve();
  }

  /** Writes what is waiting now; resolves when it is written (or failed, which is logged). */
  flush(): Promise<void> {
    this.timer?.cancel();
    this.timer = null;
    this.fire?.();
    return this.chain;
  }

  /** The exposition text as it stands (for `hyperbot-ops metrics`). */
  async render(): Promise<string> {
    return renderExposition(await this.snapshot(await this.deps.store.read()));
  }

  /** Everything the exposition shows, with these counters. */
  async snapshot(counters: Counters): Promise<MetricsSnapshot> {
    const { sources } = this.deps;
    const [container, heartbeatAt, rollbackPending] = await Promise.all([
      sources.container(),
      sources.heartbeatAt().catch(() => null),
      sources.rollbackPending().catch(() => false),
    ]);
    return { version: this.deps.version, counters, container, heartbeatAt, rollbackPending };
  }

  private schedule(): Promise<void> {
    if (this.due) return this.due;
    this.due = new Promise<void>((resolve) => {
      this.fire = () => {
        this.fire = null;
        this.due = null;
        this.timer = null;
        this.chain = this.chain.then(() => this.write());
        this.chain.then(resolve);
      };
    });
    this.timer = this.deps.clock.after(this.delayMs, () => this.fire?.());
    return this.due;
  }

  private async write(): Promise<void> {
    const events = this.pending.splice(0);
    const { file, store, logger } = this.deps;
    if (events.length === 0 && !file) return;
    try {
      await store.update(async (counters) => {
        const next = events.reduce(applyEvent, counters);
        if (file) await file.write(renderExposition(await this.snapshot(next)));
        return next;
      });
      if (this.failing) logger.info("metrics are written again", { file: file?.path });
      this.failing = false;
    } catch (err) {
      // Kept for the next write; said once until a write succeeds again.
      this.pending.unshift(...events);
      if (!this.failing) {
        logger.error("cannot write the metrics", {
          file: file?.path,
          error: describeError(err).message,
        });
      }
      this.failing = true;
    }
  }
}

/** A sink that drops everything (tests, and commands that record nothing). */
export const NO_METRICS: MetricsSink = { record() {} };
