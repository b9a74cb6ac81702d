/** In-memory outbox and notify state, for the notify unit tests. */

import {
  emptyNotifyState,
  type NotifyState,
  type NotifyStateStore,
  type OutboxEntry,
  type OutboxStore,
  type TakenEntry,
} from "../../lib/notify/notifier.ts";

export class MemoryOutbox implements OutboxStore {
  readonly entries = new Map<string, OutboxEntry>();
  private readonly held = new Set<string>();
  /** When set, reschedule fails with this error (a full stateDir: ENOSPC). */
  failReschedule: Error | null = null;

  add(entry: OutboxEntry, max: number): Promise<OutboxEntry[]> {
    this.entries.set(entry.id, structuredClone(entry));
    const all = [...this.entries.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    const dropped = all.slice(0, Math.max(0, all.length - max));
    for (const d of dropped) this.entries.delete(d.id);
    return Promise.resolve(dropped);
  }

  list(): Promise<OutboxEntry[]> {
    return Promise.resolve([...this.entries.values()].map((e) => structuredClone(e)));
  }

  take(id: string): Promise<TakenEntry | null> {
    const entry = this.entries.get(id);
    if (!entry || this.held.has(id)) return Promise.resolve(null);
    this.held.add(id);
    return Promise.resolve({
      entry: structuredClone(entry),
      remove: () => {
        this.entries.delete(id);
        return Promise.resolve();
      },
      reschedule: (next: OutboxEntry) => {
        if (this.failReschedule) return Promise.reject(this.failReschedule);
        this.entries.set(id, structuredClone(next));
        return Promise.resolve();
      },
      release: () => {
        this.held.delete(id);
        return Promise.resolve();
      },
    });
  }
}

export class MemoryNotifyState implements NotifyStateStore {
  state: NotifyState = emptyNotifyState();
  read(): Promise<NotifyState> {
    return Promise.resolve(structuredClone(this.state));
  }
  update(change: (state: NotifyState) => void): Promise<void> {
    const next = structuredClone(this.state);
    change(next);
    this.state = next;
    return Promise.resolve();
  }
}
