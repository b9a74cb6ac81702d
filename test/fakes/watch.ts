/** In-memory stand-ins for what the watch loop touches: the data folder, its inotify watch, the heartbeat. */

import type { Claim, TriggerInbox } from "../../lib/adapters/trigger_inbox.ts";
import type { FolderWatch, FolderWatcher } from "../../lib/adapters/fs_watcher.ts";
import type { Heartbeat, HeartbeatStore } from "../../lib/watch/heartbeat.ts";
import type { Clock } from "../../lib/state.ts";
import type { ClaimedContent } from "../../lib/watch/trigger.ts";

/** The data folder and the claim folder, in memory. */
export class FakeInbox implements TriggerInbox {
  trigger: ClaimedContent | null = null;
  claims = new Map<string, Claim>();
  dirId: string | null = "1:1";
  readonly calls: string[] = [];
  private n = 0;

  /** `clock` stamps the claims (claimedAt). */
  constructor(private readonly clock: Clock) {}

  write(text: string) {
    this.trigger = fileOf(text);
  }
  /** A claim a previous run left in stateDir (`startedAt`: when it was handed to an update). */
  stage(stamp: string, text: string, startedAt: number | null = null) {
    this.claims.set(stamp, { stamp, claimedAt: Number(stamp), startedAt, content: fileOf(text) });
  }
  claim(): Promise<Claim | null> {
    this.calls.push("claim");
    if (!this.trigger || this.dirId === null) return Promise.resolve(null);
    const claim: Claim = {
      stamp: String(++this.n).padStart(6, "0"),
      claimedAt: this.clock.now().getTime(),
      startedAt: null,
      content: this.trigger,
    };
    this.trigger = null;
    if (claim.content.kind === "file") this.claims.set(claim.stamp, claim);
    return Promise.resolve(claim);
  }
  pending(): Promise<Claim[]> {
    this.calls.push("pending");
    return Promise.resolve(
      [...this.claims.values()].sort((a, b) => a.stamp.localeCompare(b.stamp)),
    );
  }
  markStarted(claim: Claim, at: number): Promise<Claim> {
    const next = { ...claim, startedAt: at };
    this.claims.set(claim.stamp, next);
    return Promise.resolve(next);
  }
  unmarkStarted(claim: Claim): Promise<Claim> {
    const next = { ...claim, startedAt: null };
    this.claims.set(claim.stamp, next);
    return Promise.resolve(next);
  }
  remove(claim: Claim): Promise<void> {
    this.claims.delete(claim.stamp);
    return Promise.resolve();
  }
  hasTrigger(): Promise<boolean> {
    return Promise.resolve(this.trigger !== null && this.dirId !== null);
  }
  dataDirIdentity(): Promise<string | null> {
    return Promise.resolve(this.dirId);
  }
}

/** A folder watcher whose events the test fires. */
export class FakeFolderWatcher implements FolderWatcher {
  active: { onChange: (paths: string[]) => void; end: () => void } | null = null;
  starts = 0;
  watch(_dir: string, onChange: (paths: string[]) => void): FolderWatch {
    this.starts++;
    let end!: () => void;
    const ended = new Promise<void>((resolve) => end = resolve);
    const entry = { onChange, end };
    this.active = entry;
    return {
      ended,
      close: () => {
        if (this.active === entry) this.active = null;
        end();
        return Promise.resolve();
      },
    };
  }
  fire(name = ".update_trigger") {
    this.active?.onChange([`/data/${name}`]);
  }
  /** The folder was removed: the watch ends by itself. */
  vanish() {
    const active = this.active;
    this.active = null;
    active?.end();
  }
}

export class FakeHeartbeat implements HeartbeatStore {
  readonly beats: Heartbeat[] = [];
  write(heartbeat: Heartbeat) {
    this.beats.push(heartbeat);
    return Promise.resolve();
  }
  read() {
    return Promise.resolve(this.beats.at(-1) ?? null);
  }
}

export function fileOf(text: string): ClaimedContent {
  return { kind: "file", bytes: new TextEncoder().encode(text) };
}
