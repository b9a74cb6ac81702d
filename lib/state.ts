/**
 * Small interfaces for the state the update keeps outside Docker: the clock, the lock,
 * the journal, the status file and history the bot reads, and the last-update record.
 * Real implementations: lib/adapters/files.ts. Fakes: test/fakes/state.ts.
 */

import type { JournalEntry, LastUpdate, StatusFile } from "./update/report.ts";

export interface Clock {
  now(): Date;
  /** Resolves after `ms` milliseconds. */
  sleep(ms: number): Promise<void>;
  /**
   * Calls `fire` once after `ms` milliseconds (0 for a negative `ms`) unless cancelled first.
   * Cancelling after it fired does nothing.
   */
  after(ms: number, fire: () => void): Timer;
}

/** A pending `Clock.after` call. */
export interface Timer {
  cancel(): void;
}

export const systemClock: Clock = {
  now: () => new Date(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  after: (ms, fire) => {
    const id = setTimeout(fire, Math.max(0, ms));
    return { cancel: () => clearTimeout(id) };
  },
};

export interface LockHolder {
  pid: number;
  command: string;
  since: string;
}

export interface UpdateLock {
  /**
   * Takes the exclusive update lock without waiting. Throws LockedError naming the holder
   * when another process holds it. The lock dies with the process (flock), so a kill -9
   * never leaves it stale.
   */
  acquire(holder: LockHolder): Promise<{ release(): Promise<void> }>;
  /** Who holds the lock now, or null when it is free. */
  holder(): Promise<LockHolder | null>;
}

export interface JournalStore {
  /** The update in progress, or null when none is. Throws on a corrupt journal only if unreadable. */
  read(): Promise<JournalEntry | null>;
  /** Writes atomically and durably (fsync) before the step it records runs. */
  write(entry: JournalEntry): Promise<void>;
  clear(): Promise<void>;
}

export interface StatusStore {
  /** Writes `<dataDir>/.update_status.json` atomically, readable by the bot. */
  write(status: StatusFile): Promise<void>;
  /** Returns null when absent or unreadable. */
  read(): Promise<StatusFile | null>;
  /** Appends a finished update to `<dataDir>/.update_history.jsonl`, bounded in size. */
  appendHistory(status: StatusFile): Promise<void>;
}

export interface LastUpdateStore {
  read(): Promise<LastUpdate | null>;
  write(last: LastUpdate): Promise<void>;
}

/** Images pulled for updates of `container` that failed or were rolled back, newest first. */
export interface FailedImages {
  container: string;
  imageIds: string[];
}

/** Where the failed updates' images are remembered, so they can be removed (keepImages). */
export interface FailedImagesStore {
  /** Null when nothing was recorded. */
  read(): Promise<FailedImages | null>;
  write(failed: FailedImages): Promise<void>;
}

/**
 * Root's own record of how updates ended, in stateDir (never in dataDir, which the bot's
 * container can write): what `status` shows. The last ended update and the last rejected
 * trigger are kept apart, so a rejection never hides the update before it.
 */
export interface UpdateRecordStore {
  /** The last update that ended (succeeded, unchanged, rolled_back, failed); null when none. */
  lastUpdate(): Promise<StatusFile | null>;
  /** The last rejected trigger; null when none. */
  lastRejection(): Promise<StatusFile | null>;
  /** Records an ended update or a rejection (by its state); progress states are ignored. */
  record(status: StatusFile): Promise<void>;
}
