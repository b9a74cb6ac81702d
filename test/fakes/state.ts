/** In-memory state for the update engine's unit tests. */

import { LockedError } from "../../lib/errors.ts";
import type { JournalEntry, LastUpdate, StatusFile } from "../../lib/update/report.ts";
import type {
  Clock,
  JournalStore,
  LastUpdateStore,
  LockHolder,
  StatusStore,
  UpdateLock,
} from "../../lib/state.ts";

/** A clock whose sleep advances virtual time at once. */
export class FakeClock implements Clock {
  constructor(private ms = Date.parse("2026-11-29T12:00:00Z")) {}
  now() {
    return new Date(this.ms);
  }
  async sleep(ms: number) {
    this.ms += ms;
    await Promise.resolve();
  }
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
