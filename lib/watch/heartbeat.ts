/**
 * The watcher's heartbeat in `<stateDir>/heartbeat.json`: written every 30 s and on every
 * change of state, so `health` can tell a hung watcher from a live one.
 */

import { join } from "node:path";
import { ensureDir, HEARTBEAT_FILE, readJsonOrNull, writeFileAtomic } from "../adapters/files.ts";

/** What the watcher is doing. */
export type WatchState =
  | "starting"
  | "recovering"
  | "idle"
  | "updating"
  | "waiting_for_docker"
  | "waiting_for_lock"
  | "stopping"
  | "stopped";

export interface Heartbeat {
  /** When it was written (ISO 8601). */
  timestamp: string;
  pid: number;
  state: WatchState;
  /** When this watcher started (ISO 8601). */
  startedAt: string;
  /** Milliseconds between heartbeats: a reader calls one older than ~3 of these stale. */
  intervalMs: number;
}

export interface HeartbeatStore {
  /** Writes atomically. */
  write(heartbeat: Heartbeat): Promise<void>;
  /** Returns null when absent or unreadable. */
  read(): Promise<Heartbeat | null>;
}

export const HEARTBEAT_INTERVAL_MS = 30_000;

export class FileHeartbeatStore implements HeartbeatStore {
  constructor(private readonly stateDir: string) {}
  async write(heartbeat: Heartbeat): Promise<void> {
    await ensureDir(this.stateDir);
    await writeFileAtomic(join(this.stateDir, HEARTBEAT_FILE), JSON.stringify(heartbeat) + "\n", {
      mode: 0o644,
    });
  }
  read(): Promise<Heartbeat | null> {
    return readJsonOrNull<Heartbeat>(join(this.stateDir, HEARTBEAT_FILE)).catch(() => null);
  }
}

/**
 * Whether a heartbeat shows a live watcher at `now`: written less than three intervals ago
 * and not "stopped". Returns false for null.
 */
export function isHeartbeatFresh(heartbeat: Heartbeat | null, now: Date): boolean {
  if (!heartbeat || heartbeat.state === "stopped") return false;
  const age = now.getTime() - Date.parse(heartbeat.timestamp);
  const interval = heartbeat.intervalMs > 0 ? heartbeat.intervalMs : HEARTBEAT_INTERVAL_MS;
  return Number.isFinite(age) && age < 3 * interval;
}
