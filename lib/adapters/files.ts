/**
 * File-backed state: atomic writes, the flock-based update lock, the journal,
 * the status file and history the bot reads, and the last-update record.
 */

import { dirname, join } from "node:path";
import { LockedError } from "../errors.ts";
import type { JournalEntry, LastUpdate, StatusFile } from "../report.ts";
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
export const LAST_UPDATE_FILE = "last-update.json";
export const HEARTBEAT_FILE = "heartbeat.json";

/** History is cut back to its newest half when it grows past this. */
export const MAX_HISTORY_BYTES = 256 * 1024;

/**
 * Writes a file atomically: a temporary file in the same folder, fsync, rename, fsync of the
 * folder. A reader sees the old content or the new, never a part.
 */
export async function writeFileAtomic(
  path: string,
  content: string,
  options: { mode?: number } = {},
): Promise<void> {
  const mode = options.mode ?? 0o640;
  const tmp = join(dirname(path), `.${crypto.randomUUID()}.tmp`);
  const file = await Deno.open(tmp, { write: true, createNew: true, mode });
  try {
    await file.write(new TextEncoder().encode(content));
    await file.sync();
  } finally {
    file.close();
  }
  try {
    // The umask may have narrowed the mode; the bot may need to read the file.
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  await syncDir(dirname(path));
}

async function syncDir(dir: string) {
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
  constructor(private readonly stateDir: string) {}

  private get path() {
    return join(this.stateDir, LOCK_FILE);
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
      throw new LockedError(`another update is in progress: held by ${who}`, {
        object: this.path,
        hint: "wait for it to finish; `hyperbot-ops status` shows its progress",
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
  read(): Promise<JournalEntry | null> {
    return readJsonOrNull<JournalEntry>(this.path);
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
  read(): Promise<StatusFile | null> {
    return readJsonOrNull<StatusFile>(join(this.dataDir, STATUS_FILE)).catch(() => null);
  }
  async appendHistory(status: StatusFile): Promise<void> {
    const path = join(this.dataDir, HISTORY_FILE);
    const line = JSON.stringify(status) + "\n";
    let existing = "";
    try {
      const info = await Deno.lstat(path);
      // Never follow a link the container may have planted, and keep the file bounded.
      if (!info.isFile) await Deno.remove(path);
      else if (info.size + line.length > MAX_HISTORY_BYTES) {
        existing = await Deno.readTextFile(path);
      } else {
        const file = await Deno.open(path, { append: true, write: true });
        try {
          await file.write(new TextEncoder().encode(line));
        } finally {
          file.close();
        }
        return;
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const lines = existing.split("\n").filter(Boolean);
    const kept = lines.slice(Math.floor(lines.length / 2));
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
