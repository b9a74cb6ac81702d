/**
 * File-backed state: atomic writes, the flock-based update lock, the journal,
 * the status file and history the bot reads, and the last-update record.
 */

import { constants, promises as fsp } from "node:fs";
import { dirname, join } from "node:path";
import { LockedError, UpdateFailedError } from "../errors.ts";
import type { JournalEntry, LastUpdate, StatusFile } from "../update/report.ts";
import type {
  JournalStore,
  LastUpdateStore,
  LockHolder,
  StatusStore,
  UpdateLock,
} from "../state.ts";

export const STATUS_FILE = ".update_status.json";
export const HISTORY_FILE = ".update_history.jsonl";
export const TRIGGER_FILE = ".update_trigger";
export const JOURNAL_FILE = "journal.json";
export const LOCK_FILE = "update.lock";
export const WATCH_LOCK_FILE = "watch.lock";
export const LAST_UPDATE_FILE = "last-update.json";
export const HEARTBEAT_FILE = "heartbeat.json";

/** History is cut back to its newest half when it grows past this. */
export const MAX_HISTORY_BYTES = 256 * 1024;

/**
 * Writes a file atomically: a temporary file in the same folder, fsync, rename, fsync of the
 * folder. A reader sees the old content or the new, never a part.
 *
 * Safe in a folder the bot's container can write to: the temporary file is created with
 * O_EXCL (a planted link makes the open fail instead of being followed), it gets its mode at
 * creation (no chmod by path, which would follow a link swapped in afterwards), and rename
 * replaces a link at `path` rather than writing through it.
 */
export async function writeFileAtomic(
  path: string,
  content: string,
  options: { mode?: number } = {},
): Promise<void> {
  const mode = options.mode ?? 0o640;
  const tmp = join(dirname(path), `.${crypto.randomUUID()}.tmp`);
  const file = createExclusive(tmp, mode);
  try {
    await file.write(new TextEncoder().encode(content));
    await file.sync();
  } finally {
    file.close();
  }
  try {
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  await syncDir(dirname(path));
}

/**
 * Creates a new file with exactly `mode`. The process umask (027, set in main.ts) would narrow
 * it, so it is lifted for this one synchronous call; no other code runs in between.
 */
function createExclusive(path: string, mode: number): Deno.FsFile {
  const previous = Deno.umask(0);
  try {
    return Deno.openSync(path, { write: true, createNew: true, mode });
  } finally {
    Deno.umask(previous);
  }
}

/**
 * Reads at most `maxBytes` of a regular file in a folder the bot's container can write to:
 * opened with O_NOFOLLOW (a link is not followed) and O_NONBLOCK (a FIFO swapped in after the
 * lstat cannot block us), and only read if it is the regular file lstat saw (same dev and
 * inode). Returns null when absent or anything but that regular file.
 */
export async function readRegularFile(path: string, maxBytes: number): Promise<string | null> {
  let entry: Deno.FileInfo;
  try {
    entry = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  if (!entry.isFile) return null;
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ELOOP" || code === "ENOENT" || code === "ENXIO") return null;
    throw err;
  }
  try {
    const opened = await handle.stat();
    if (opened.ino !== entry.ino || opened.dev !== entry.dev || !opened.isFile()) return null;
    const buffer = new Uint8Array(Math.min(maxBytes, opened.size));
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return new TextDecoder().decode(buffer.subarray(0, filled));
  } finally {
    await handle.close();
  }
}

/** fsyncs a folder so a rename in it survives a power cut. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // Some filesystems cannot fsync a folder; the rename is still atomic.
  }
}

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

export class FileStatusStore implements StatusStore {
  constructor(private readonly dataDir: string) {}
  async write(status: StatusFile): Promise<void> {
    await writeFileAtomic(join(this.dataDir, STATUS_FILE), JSON.stringify(status, null, 2) + "\n", {
      mode: 0o644,
    });
  }
  async read(): Promise<StatusFile | null> {
    try {
      const text = await readRegularFile(join(this.dataDir, STATUS_FILE), 1024 * 1024);
      return text === null ? null : JSON.parse(text) as StatusFile;
    } catch {
      return null;
    }
  }
  /**
   * The folder is the bot's: the history is read without following links and rewritten
   * atomically (never appended in place), and cut to its newest half past MAX_HISTORY_BYTES.
   */
  async appendHistory(status: StatusFile): Promise<void> {
    const path = join(this.dataDir, HISTORY_FILE);
    const line = JSON.stringify(status) + "\n";
    const existing = (await readRegularFile(path, MAX_HISTORY_BYTES)) ?? "";
    let kept = existing.split("\n").filter((l) => l.startsWith("{") && l.endsWith("}"));
    if (existing.length + line.length > MAX_HISTORY_BYTES) {
      kept = kept.slice(Math.floor(kept.length / 2));
    }
    await writeFileAtomic(path, kept.map((l) => l + "\n").join("") + line, { mode: 0o644 });
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
