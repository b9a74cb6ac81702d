/**
 * Notify's files in `<stateDir>/notify/`: the outbox (one file per message and channel, so
 * watch, update and health can add and deliver side by side) and the small state file (last
 * delivery and failure per channel, what was already reported).
 *
 * An entry is delivered by one process at a time: it holds an flock on the entry's file while it
 * tries, and checks after locking that the file is still the one at that path (another process
 * may have delivered and removed it in between). The kernel drops the lock when a process dies,
 * so a killed watcher never leaves an entry stuck.
 */

import { join } from "node:path";
import { ensureDir, readJsonOrNull, withFileLock, writeFileAtomic } from "./files.ts";
import {
  emptyNotifyState,
  type NotifyState,
  type NotifyStateStore,
  type OutboxEntry,
  type OutboxStore,
  type TakenEntry,
} from "../notify/notifier.ts";

export const NOTIFY_DIR = "notify";
const OUTBOX_DIR = "outbox";
const STATE_FILE = "state.json";
const STATE_LOCK = "state.lock";

export class FileOutboxStore implements OutboxStore {
  private readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, NOTIFY_DIR, OUTBOX_DIR);
  }

  private path(id: string): string {
    if (!/^[A-Za-z0-9_.-]+$/.test(id)) throw new Error(`bad outbox entry id '${id}'`);
    return join(this.dir, `${id}.json`);
  }

  async add(entry: OutboxEntry, max: number): Promise<OutboxEntry[]> {
    await ensureDir(this.dir, 0o700);
    await writeFileAtomic(this.path(entry.id), JSON.stringify(entry) + "\n", { mode: 0o600 });
    const all = await this.list();
    if (all.length <= max) return [];
    const oldest = all.sort((a, b) => a.createdAt.localeCompare(b.createdAt))
      .slice(0, all.length - max);
    for (const e of oldest) await Deno.remove(this.path(e.id)).catch(() => {});
    return oldest;
  }

  async list(): Promise<OutboxEntry[]> {
    const entries: OutboxEntry[] = [];
    let names: string[];
    try {
      names = [];
      for await (const e of Deno.readDir(this.dir)) {
        if (e.isFile && e.name.endsWith(".json") && !e.name.startsWith(".")) names.push(e.name);
      }
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
    for (const name of names) {
      const entry = await readJsonOrNull<OutboxEntry>(join(this.dir, name)).catch(() => null);
      if (entry && typeof entry.id === "string" && `${entry.id}.json` === name) entries.push(entry);
    }
    return entries;
  }

  async take(id: string): Promise<TakenEntry | null> {
    const path = this.path(id);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true, write: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await file.unlock().catch(() => {});
      file.close();
    };
    try {
      if (!(await file.tryLock(true))) {
        file.close();
        released = true;
        return null;
      }
      // Removed (delivered) or replaced (rescheduled) by another process after our open.
      const [opened, current] = await Promise.all([file.stat(), Deno.stat(path).catch(() => null)]);
      if (current === null || current.ino !== opened.ino || current.dev !== opened.dev) {
        await release();
        return null;
      }
      let entry: OutboxEntry | null = null;
      try {
        entry = JSON.parse(await Deno.readTextFile(path)) as OutboxEntry;
      } catch {
        entry = null;
      }
      if (entry === null || entry.id !== id) {
        // A torn or foreign file cannot be delivered and must not block the outbox.
        await Deno.remove(path).catch(() => {});
        await release();
        return null;
      }
      return {
        entry,
        remove: async () => {
          await Deno.remove(path).catch((err) => {
            if (!(err instanceof Deno.errors.NotFound)) throw err;
          });
        },
        reschedule: async (next) => {
          await writeFileAtomic(path, JSON.stringify(next) + "\n", { mode: 0o600 });
        },
        release,
      };
    } catch (err) {
      await release();
      throw err;
    }
  }
}

export class FileNotifyStateStore implements NotifyStateStore {
  private readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, NOTIFY_DIR);
  }

  async read(): Promise<NotifyState> {
    const saved = await readJsonOrNull<Partial<NotifyState>>(join(this.dir, STATE_FILE))
      .catch(() => null);
    return { ...emptyNotifyState(), ...(saved ?? {}) };
  }

  async update(change: (state: NotifyState) => void): Promise<void> {
    await ensureDir(this.dir, 0o700);
    await withFileLock(join(this.dir, STATE_LOCK), 0o600, async () => {
      const state = await this.read();
      change(state);
      await writeFileAtomic(join(this.dir, STATE_FILE), JSON.stringify(state, null, 2) + "\n", {
        mode: 0o600,
      });
    });
  }
}

/** This server's name, for the messages. */
export function systemHostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown-host";
  }
}
