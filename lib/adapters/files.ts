/**
 * File-backed state: atomic writes, the flock-based update lock, the journal,
 * the status file and history the bot reads, and the last-update record.
 */

import { join } from "node:path";
import { DataDir, syncDir, writeFileAtomic } from "./data_dir.ts";
import { LockedError, UpdateFailedError } from "../errors.ts";
import type { JournalEntry, LastUpdate, StatusFile } from "../update/report.ts";
import type {
  FailedImages,
  FailedImagesStore,
  JournalStore,
  LastUpdateStore,
  LockHolder,
  StatusStore,
  UpdateLock,
  UpdateRecordStore,
} from "../state.ts";
import { ENDED_STATES } from "../update/records.ts";

export const STATUS_FILE = ".update_status.json";
export const HISTORY_FILE = ".update_history.jsonl";
export const TRIGGER_FILE = ".update_trigger";
export const JOURNAL_FILE = "journal.json";
export const LOCK_FILE = "update.lock";
export const WATCH_LOCK_FILE = "watch.lock";
export const LAST_UPDATE_FILE = "last-update.json";
export const FAILED_IMAGES_FILE = "failed-images.json";
export const HEARTBEAT_FILE = "heartbeat.json";
/** Root's record of the last ended update, and of the last rejected trigger (stateDir). */
export const LAST_RESULT_FILE = "last-result.json";
export const LAST_REJECTION_FILE = "last-rejection.json";

export { syncDir, writeFileAtomic };

/** History is cut back to its newest half when it grows past this. */
export const MAX_HISTORY_BYTES = 256 * 1024;

export async function readJsonOrNull<T>(path: string): Promise<T | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

export async function ensureDir(path: string, mode = 0o750): Promise<void> {
  await Deno.mkdir(path, { recursive: true, mode });
}

/**
 * Runs `fn` while holding an exclusive flock on `lockPath` (created with `mode` if missing), so
 * processes that read-modify-write the same state file take turns. The kernel drops the lock
 * when a process dies; closing the handle releases it here.
 */
export async function withFileLock<T>(
  lockPath: string,
  mode: number,
  fn: () => Promise<T>,
): Promise<T> {
  const lock = await Deno.open(lockPath, { read: true, write: true, create: true, mode });
  try {
    await lock.lock(true);
    return await fn();
  } finally {
    lock.close();
  }
}

/** The update lock: an flock on `<stateDir>/update.lock`, released by the kernel when the process dies. */
export class FlockUpdateLock implements UpdateLock {
  /**
   * `file` and `what` make the same lock serve for one watcher per stateDir
   * (`watch.lock`, "another watcher is running").
   */
  constructor(
    private readonly stateDir: string,
    private readonly file = LOCK_FILE,
    private readonly what = "another update is in progress",
    private readonly hint = "wait for it to finish; `hyperbot-ops status` shows its progress",
  ) {}

  private get path() {
    return join(this.stateDir, this.file);
  }

  async acquire(holder: LockHolder): Promise<{ release(): Promise<void> }> {
    await ensureDir(this.stateDir);
    const file = await Deno.open(this.path, { read: true, write: true, create: true, mode: 0o640 });
    let locked = false;
    try {
      locked = await file.tryLock(true);
    } catch (err) {
      file.close();
      throw err;
    }
    if (!locked) {
      file.close();
      const current = await this.holder();
      const who = current
        ? `pid ${current.pid} (${current.command}) since ${current.since}`
        : "another process";
      throw new LockedError(`${this.what}: held by ${who}`, {
        object: this.path,
        hint: this.hint,
      });
    }
    await file.truncate(0);
    await file.write(new TextEncoder().encode(JSON.stringify(holder) + "\n"));
    return {
      release: async () => {
        try {
          await file.truncate(0);
          await file.unlock();
        } finally {
          file.close();
        }
      },
    };
  }

  async holder(): Promise<LockHolder | null> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.path, { read: true, write: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
    try {
      // If we can take a shared lock, nobody holds the exclusive one.
      if (await file.tryLock(false)) {
        await file.unlock();
        return null;
      }
      const text = await Deno.readTextFile(this.path);
      try {
        return JSON.parse(text) as LockHolder;
      } catch {
        return { pid: 0, command: "unknown", since: "unknown" };
      }
    } finally {
      file.close();
    }
  }
}

export class FileJournalStore implements JournalStore {
  constructor(private readonly stateDir: string) {}
  private get path() {
    return join(this.stateDir, JOURNAL_FILE);
  }
  async read(): Promise<JournalEntry | null> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
    try {
      return JSON.parse(text) as JournalEntry;
    } catch (err) {
      // Never guess: the journal may be all that says where the bot's old container is.
      throw new UpdateFailedError("the update journal is unreadable", {
        object: this.path,
        cause: err,
        hint: "check the containers with 'docker ps -a', then move the file away",
      });
    }
  }
  async write(entry: JournalEntry): Promise<void> {
    await ensureDir(this.stateDir);
    await writeFileAtomic(this.path, JSON.stringify(entry, null, 2) + "\n", { mode: 0o600 });
  }
  async clear(): Promise<void> {
    await Deno.remove(this.path).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    await syncDir(this.stateDir);
  }
}

/** The status file and history in dataDir, through lib/adapters/data_dir.ts. */
export class FileStatusStore implements StatusStore {
  private readonly data: DataDir;
  constructor(dataDir: string) {
    this.data = new DataDir(dataDir);
  }
  async write(status: StatusFile): Promise<void> {
    await this.data.write(STATUS_FILE, JSON.stringify(status, null, 2) + "\n", 0o644);
  }
  async read(): Promise<StatusFile | null> {
    try {
      const content = await this.data.read(STATUS_FILE, 1024 * 1024);
      if (!content?.bytes) return null;
      return JSON.parse(new TextDecoder().decode(content.bytes)) as StatusFile;
    } catch {
      return null;
    }
  }
  /**
   * The folder is the bot's: the history is read as data_dir.ts reads (never a device, FIFO or
   * link) and rewritten atomically (never appended in place), cut to its newest half past
   * MAX_HISTORY_BYTES.
   */
  async appendHistory(status: StatusFile): Promise<void> {
    const line = JSON.stringify(status) + "\n";
    const content = await this.data.read(HISTORY_FILE, MAX_HISTORY_BYTES);
    const existing = content?.bytes ? new TextDecoder().decode(content.bytes) : "";
    let kept = existing.split("\n").filter((l) => l.startsWith("{") && l.endsWith("}"));
    if (existing.length + line.length > MAX_HISTORY_BYTES) {
      kept = kept.slice(Math.floor(kept.length / 2));
    }
    await this.data.write(HISTORY_FILE, kept.map((l) => l + "\n").join("") + line, 0o644);
  }
}

/** `<stateDir>/failed-images.json`: the images of failed or rolled-back updates. */
export class FileFailedImagesStore implements FailedImagesStore {
  constructor(private readonly stateDir: string) {}
  read(): Promise<FailedImages | null> {
    return readJsonOrNull<FailedImages>(join(this.stateDir, FAILED_IMAGES_FILE));
  }
  async write(failed: FailedImages): Promise<void> {
    await ensureDir(this.stateDir);
    await writeFileAtomic(
      join(this.stateDir, FAILED_IMAGES_FILE),
      JSON.stringify(failed, null, 2) + "\n",
    );
  }
}

export class FileLastUpdateStore implements LastUpdateStore {
  constructor(private readonly stateDir: string) {}
  read(): Promise<LastUpdate | null> {
    return readJsonOrNull<LastUpdate>(join(this.stateDir, LAST_UPDATE_FILE));
  }
  async write(last: LastUpdate): Promise<void> {
    await ensureDir(this.stateDir);
    await writeFileAtomic(
      join(this.stateDir, LAST_UPDATE_FILE),
      JSON.stringify(last, null, 2) + "\n",
    );
  }
}

/**
 * `<stateDir>/last-result.json` and `<stateDir>/last-rejection.json`: one record each, replaced
 * atomically (bounded by construction). Two files, so the watcher's rejection and an update's
 * result never race on one read-modify-write.
 */
export class FileUpdateRecordStore implements UpdateRecordStore {
  constructor(private readonly stateDir: string) {}
  lastUpdate(): Promise<StatusFile | null> {
    return readJsonOrNull<StatusFile>(join(this.stateDir, LAST_RESULT_FILE));
  }
  lastRejection(): Promise<StatusFile | null> {
    return readJsonOrNull<StatusFile>(join(this.stateDir, LAST_REJECTION_FILE));
  }
  async record(status: StatusFile): Promise<void> {
    const file = status.state === "rejected"
      ? LAST_REJECTION_FILE
      : ENDED_STATES.includes(status.state)
      ? LAST_RESULT_FILE
      : null;
    if (file === null) return;
    await ensureDir(this.stateDir);
    await writeFileAtomic(join(this.stateDir, file), JSON.stringify(status, null, 2) + "\n", {
      mode: 0o640,
    });
  }
}
