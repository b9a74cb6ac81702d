/** In-memory state for the update engine's and the watch's unit tests. */

import { setImmediate } from "node:timers";
import { LockedError } from "../../lib/errors.ts";
import type { JournalEntry, LastUpdate, StatusFile } from "../../lib/update/report.ts";
import type {
  Clock,
  FailedImages,
  FailedImagesStore,
  JournalStore,
  LastUpdateStore,
  LockHolder,
  StatusStore,
  Timer,
  UpdateLock,
} from "../../lib/state.ts";

/**
 * Virtual time. `sleep` advances it at once (the update's polls finish without waiting);
 * `after` timers fire only when time is moved past them, by `sleep`, `advance` or `runUntil`,
 * in the order they are due.
 */
export class FakeClock implements Clock {
  private timers: { at: number; seq: number; fire: () => void }[] = [];
  private seq = 0;

  constructor(private ms = Date.parse("2026-11-29T12:00:00Z")) {}

  now() {
    return new Date(this.ms);
  }

  async sleep(ms: number) {
    this.fireUntil(this.ms + Math.max(0, ms));
    await Promise.resolve();
  }

  after(ms: number, fire: () => void): Timer {
    const timer = { at: this.ms + Math.max(0, ms), seq: this.seq++, fire };
    this.timers.push(timer);
    return { cancel: () => this.timers = this.timers.filter((t) => t !== timer) };
  }

  /** Epoch ms of the next pending timer, or null when none is pending. */
  nextTimerAt(): number | null {
    return this.next()?.at ?? null;
  }

  /** How many timers are pending. */
  get pending(): number {
    return this.timers.length;
  }

  /**
   * Moves time forward by `ms`, firing each timer due on the way at its own time and letting
   * the code under test run (all its pending promise reactions) after each one.
   */
  async advance(ms: number) {
    const end = this.ms + Math.max(0, ms);
    await settle();
    for (let timer = this.next(); timer && timer.at <= end; timer = this.next()) {
      this.fire(timer);
      await settle();
    }
    this.ms = end;
    await settle();
  }

  /**
   * Moves time from timer to timer until `check` holds; throws naming `what` when it still
   * does not after `limitMs` of virtual time or when no timer is left to move to.
   */
  async runUntil(what: string, check: () => boolean, limitMs = 3_000) {
    const deadline = this.ms + limitMs;
    await settle();
    while (!check()) {
      const timer = this.next();
      if (!timer) throw new Error(`waiting for ${what}: no timer left, nothing more will happen`);
      if (timer.at > deadline) {
        throw new Error(`timed out waiting for: ${what} (${limitMs} ms of virtual time)`);
      }
      this.fire(timer);
      await settle();
    }
  }

  private next() {
    let first: (typeof this.timers)[number] | undefined;
    for (const t of this.timers) {
      if (!first || t.at < first.at || (t.at === first.at && t.seq < first.seq)) first = t;
    }
    return first;
  }

  private fire(timer: (typeof this.timers)[number]) {
    this.timers = this.timers.filter((t) => t !== timer);
    this.ms = Math.max(this.ms, timer.at);
    timer.fire();
  }

  private fireUntil(end: number) {
    for (let timer = this.next(); timer && timer.at <= end; timer = this.next()) this.fire(timer);
    this.ms = end;
  }
}

/** Lets every pending promise reaction run (a macrotask turn; no wall time is waited for). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class FakeLock implements UpdateLock {
  current: LockHolder | null = null;
  acquire(holder: LockHolder) {
    if (this.current) {
      return Promise.reject(
        new LockedError(`another update is in progress: held by pid ${this.current.pid}`),
      );
    }
    this.current = holder;
    return Promise.resolve({
      release: () => {
        this.current = null;
        return Promise.resolve();
      },
    });
  }
  holder() {
    return Promise.resolve(this.current);
  }
}

export class FakeJournal implements JournalStore {
  entry: JournalEntry | null = null;
  /** Every write, as written (deep copies). */
  readonly writes: JournalEntry[] = [];
  read() {
    return Promise.resolve(this.entry ? structuredClone(this.entry) : null);
  }
  write(entry: JournalEntry) {
    this.entry = structuredClone(entry);
    this.writes.push(structuredClone(entry));
    return Promise.resolve();
  }
  clear() {
    this.entry = null;
    return Promise.resolve();
  }
}

export class FakeStatus implements StatusStore {
  current: StatusFile | null = null;
  readonly states: string[] = [];
  readonly history: StatusFile[] = [];
  write(status: StatusFile) {
    this.current = structuredClone(status);
    this.states.push(status.state);
    return Promise.resolve();
  }
  read() {
    return Promise.resolve(this.current);
  }
  appendHistory(status: StatusFile) {
    this.history.push(structuredClone(status));
    return Promise.resolve();
  }
}

export class FakeFailedImages implements FailedImagesStore {
  value: FailedImages | null = null;
  read() {
    return Promise.resolve(structuredClone(this.value));
  }
  write(failed: FailedImages) {
    this.value = structuredClone(failed);
    return Promise.resolve();
  }
}

export class FakeLastUpdate implements LastUpdateStore {
  value: LastUpdate | null = null;
  read() {
    return Promise.resolve(this.value);
  }
  write(last: LastUpdate) {
    this.value = structuredClone(last);
    return Promise.resolve();
  }
}
