/**
 * The watcher's heartbeat in `<stateDir>/heartbeat.json`: written every 30 s and on every
 * change of state, so `health` can tell a hung watcher from a live one.
 */

import { join } from "node:path";
import { ensureDir, HEARTBEAT_FILE, readJsonOrNull, writeFileAtomic } from "../adapters/files.ts";
import { errorText } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "../state.ts";

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

/**
 * The watcher's side of the heartbeat: holds the watch state and writes a heartbeat on every
 * change of state and on every `beat()`. Writes run one after the other; a failed write is
 * logged once until one succeeds again, and never stops the watch.
 */
export class HeartbeatWriter {
  private current: WatchState = "starting";
  private readonly startedAt: string;
  private writing: Promise<void> = Promise.resolve();
  private failed = false;

  constructor(
    private readonly deps: { heartbeat: HeartbeatStore; clock: Clock; logger: Logger; pid: number },
    private readonly intervalMs: number,
  ) {
    this.startedAt = deps.clock.now().toISOString();
  }

  get state(): WatchState {
    return this.current;
  }

  /** Records the new state and resolves when its heartbeat (and any before it) is written. */
  async setState(state: WatchState) {
    if (state !== this.current) this.deps.logger.debug("watch state", { state });
    this.current = state;
    this.beat();
    await this.writing;
  }

  /** Writes a heartbeat with the current state, after the ones queued before it. */
  beat() {
    const heartbeat = {
      timestamp: this.deps.clock.now().toISOString(),
      pid: this.deps.pid,
      state: this.current,
      startedAt: this.startedAt,
      intervalMs: this.intervalMs,
    };
    this.writing = this.writing.then(() => this.deps.heartbeat.write(heartbeat)).then(
      () => {
        this.failed = false;
      },
      (err) => {
        if (!this.failed) {
          this.deps.logger.error("cannot write the heartbeat", {
            error: errorText(err),
          });
        }
        this.failed = true;
      },
    );
  }

  /** Resolves when every heartbeat queued so far is written (or failed). */
  async flushed(): Promise<void> {
    await this.writing;
  }
}
