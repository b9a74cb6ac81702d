/**
 * Claiming the trigger: taking `<dataDir>/.update_trigger` out of the container's reach into
 * `<stateDir>/claimed/`, so a crash can neither run it twice nor lose it.
 *
 * Nothing the container holds may ever point into stateDir: the trigger is never moved there.
 * It is first renamed inside dataDir to `.update_trigger.claimed-<stamp>` (atomic: the writer's
 * next trigger cannot be lost or removed by us), read through lib/adapters/data_dir.ts (no link
 * followed, nothing but a regular file read), its bytes written to a new file in the claim
 * folder and fsynced, and only then is the staged name removed from dataDir. Anything but a
 * regular file is removed (bounded: what cannot be cleared is left and reported once) and comes
 * back as a claim without bytes, which the loop rejects. A crash between the steps is finished
 * at the next start.
 *
 * A claim moves through the claim folder by name:
 *   `<stamp>`                     claimed, not yet handed to the update
 *   `<stamp>.started-<ms>`        handed to the update at <ms> (epoch milliseconds)
 * and is removed when the update has ended (or the trigger was rejected).
 */

import { join } from "node:path";
import { ensureDir, TRIGGER_FILE } from "./files.ts";
import {
  DataDir,
  type EntryContent,
  isNotFound,
  readEntry,
  RemovalBudget,
  removeEntry,
  syncDir,
  writeFileAtomic,
} from "./data_dir.ts";
import { type ClaimedContent, MAX_TRIGGER_BYTES } from "../watch/trigger.ts";

export const CLAIM_DIR = "claimed";
export const STAGE_PREFIX = `${TRIGGER_FILE}.claimed-`;

/** A trigger moved into the claim folder. */
export interface Claim {
  /** Unique, sortable by claim time. */
  stamp: string;
  /** When it was claimed (epoch ms). */
  claimedAt: number;
  /** When it was handed to the update (epoch ms), or null while it waits. */
  startedAt: number | null;
  content: ClaimedContent;
}

/** Where triggers come from and where claims wait. The watch loop's view of the file system. */
export interface TriggerInbox {
  /**
   * Moves the trigger out of dataDir and reads it (at most MAX_TRIGGER_BYTES + 1 bytes).
   * Returns null when there is no trigger. A non-regular entry is removed at once and comes
   * back with `bytes: null`; it never stays in the claim folder.
   */
  claim(): Promise<Claim | null>;
  /** Claims left in the claim folder (by this or a killed process), oldest first. */
  pending(): Promise<Claim[]>;
  /** Records that the claim is handed to the update now; returns the updated claim. */
  markStarted(claim: Claim, at: number): Promise<Claim>;
  /** Puts a started claim back to waiting (the update did not begin: lock busy, daemon down). */
  unmarkStarted(claim: Claim): Promise<Claim>;
  /** Removes the claim for good. No error when it is gone already. */
  remove(claim: Claim): Promise<void>;
  /** Whether a trigger entry (of any kind) exists in dataDir now. */
  hasTrigger(): Promise<boolean>;
  /** `dev:ino` of dataDir, or null when it does not exist: tells a recreated folder apart. */
  dataDirIdentity(): Promise<string | null>;
  /**
   * Where to say that an entry the bot made could not be removed and is left where it is (the
   * watch loop passes one that counts against its trigger log budget and says each path once).
   */
  reportLeftTo?(report: LeftReporter): void;
}

let counter = 0;
function newStamp(now: number): string {
  counter = (counter + 1) % 1_000_000;
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(16).padStart(8, "0");
  return `${String(now).padStart(15, "0")}-${String(counter).padStart(6, "0")}-${rand}`;
}

const STAMP_RE = /^(\d{15})-\d{6}-[0-9a-f]{8}(?:\.started-(\d+))?$/;

/** Staged names looked at per start: the container can plant any number. */
const MAX_STAGED_SCANNED = 10_000;
/** What one claim may spend removing a hostile entry before leaving it for the next start. */
const CLAIM_REMOVAL_OPS = 20_000;
const CLAIM_REMOVAL_MS = 300;

/** Says once that an entry could not be removed and is left where it is. */
export type LeftReporter = (where: string, reason: string) => void;

export class FileTriggerInbox implements TriggerInbox {
  private readonly claimDir: string;
  private readonly data: DataDir;

  constructor(
    dataDir: string,
    stateDir: string,
    private readonly now: () => number = Date.now,
    private reportLeft: LeftReporter = () => {},
  ) {
    this.claimDir = join(stateDir, CLAIM_DIR);
    this.data = new DataDir(dataDir);
  }

  async claim(): Promise<Claim | null> {
    if ((await this.data.kindOf(TRIGGER_FILE)) === null) return null;
    await ensureDir(this.claimDir, 0o700);
    const claimedAt = this.now();
    const stamp = newStamp(claimedAt);
    try {
      // rename(2) moves the entry itself: a symlink stays a symlink, nothing is followed.
      await this.data.rename(TRIGGER_FILE, STAGE_PREFIX + stamp);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    await this.data.sync();
    return await this.finishStage(
      stamp,
      claimedAt,
      new RemovalBudget(CLAIM_REMOVAL_OPS, CLAIM_REMOVAL_MS),
    );
  }

  /**
   * Copies a staged regular file into the claim folder, then removes the staged name from
   * dataDir. Null when the staged entry is gone (the container removed it).
   */
  private async finishStage(
    stamp: string,
    claimedAt: number,
    budget: RemovalBudget,
  ): Promise<Claim | null> {
    const staged = STAGE_PREFIX + stamp;
    let content: ClaimedContent | null;
    try {
      content = await this.data.read(staged, MAX_TRIGGER_BYTES + 1);
    } catch (err) {
      if (isNotFound(err)) return null;
      // A write lease the container holds (EAGAIN), …: a claim with nothing readable, rejected;
      // the staged name is removed all the same.
      content = { kind: "other", bytes: null, unreadable: messageOf(err) };
    }
    if (content === null) return null;
    if (content.kind === "file" && content.bytes) {
      await writeFileAtomic(join(this.claimDir, stamp), content.bytes, { mode: 0o600 });
    }
    await this.removeStaged(staged, budget);
    await this.data.sync();
    return { stamp, claimedAt, startedAt: null, content };
  }

  private async removeStaged(name: string, budget: RemovalBudget): Promise<void> {
    const removal = await this.data.remove(name, budget);
    if (!removal.removed) this.reportLeft(join(this.data.path, name), removal.reason ?? "");
  }

  async pending(): Promise<Claim[]> {
    await ensureDir(this.claimDir, 0o700);
    // One budget for all the removals of a start: a container that planted many entries
    // it keeps busy cannot hold the start up for long.
    const budget = new RemovalBudget();
    // Finish the claim a killed process left staged in dataDir. The container can plant any
    // number of such names: only the newest is finished (only the newest request would run
    // anyway); the others are removed unread.
    try {
      const staged: { name: string; stamp: string; at: number }[] = [];
      for (const name of await this.data.list(STAGE_PREFIX, MAX_STAGED_SCANNED)) {
        const stamp = name.slice(STAGE_PREFIX.length);
        const m = STAMP_RE.exec(stamp);
        if (!m || m[2] !== undefined) continue;
        staged.push({ name, stamp, at: Number(m[1]) });
      }
      staged.sort((a, b) => a.stamp < b.stamp ? -1 : a.stamp > b.stamp ? 1 : 0);
      const newest = staged.pop();
      for (const older of staged) {
        if (budget.spent) break;
        await this.removeStaged(older.name, budget);
      }
      if (newest) {
        // Already claimed (waiting, or handed to the update): the container planted the name
        // again, and finishing it would make a second claim with the same stamp.
        if (await this.isClaimed(newest.stamp)) {
          await this.removeStaged(newest.name, budget);
        } else {
          await this.finishStage(newest.stamp, newest.at, budget);
        }
      }
    } catch (err) {
      // Whatever the container did to its staged names, the claims already in the claim
      // folder are still listed and settled.
      if (!isNotFound(err)) {
        this.reportLeft(join(this.data.path, `${STAGE_PREFIX}*`), messageOf(err));
      }
    }
    const claims: Claim[] = [];
    for await (const entry of Deno.readDir(this.claimDir)) {
      const m = STAMP_RE.exec(entry.name);
      const content = m && entry.isFile ? await entryAt(join(this.claimDir, entry.name)) : null;
      if (!m || content?.kind !== "file") {
        // Our own leftovers (a .tmp from a killed copy), or what an older version moved in
        // (it moved any entry the container made): nothing anyone asked for.
        if (budget.spent) continue;
        const removal = await removeEntry(this.claimDir, entry.name, budget);
        if (!removal.removed) {
          this.reportLeft(join(this.claimDir, entry.name), removal.reason ?? "");
        }
        continue;
      }
      const startedAt = m[2] === undefined ? null : Number(m[2]);
      claims.push({
        stamp: entry.name.replace(/\.started-\d+$/, ""),
        claimedAt: Number(m[1]),
        startedAt,
        content: content as ClaimedContent,
      });
    }
    return claims.sort((a, b) => a.stamp < b.stamp ? -1 : a.stamp > b.stamp ? 1 : 0);
  }

  /** Whether the claim folder holds a claim with this stamp, waiting or started. */
  private async isClaimed(stamp: string): Promise<boolean> {
    if ((await entryAt(join(this.claimDir, stamp))) !== null) return true;
    for await (const entry of Deno.readDir(this.claimDir)) {
      if (entry.name.startsWith(`${stamp}.started-`)) return true;
    }
    return false;
  }

  private pathOf(claim: Claim): string {
    return join(
      this.claimDir,
      claim.startedAt === null ? claim.stamp : `${claim.stamp}.started-${claim.startedAt}`,
    );
  }

  async markStarted(claim: Claim, at: number): Promise<Claim> {
    const next = { ...claim, startedAt: at };
    if (claim.content.kind === "file") {
      await Deno.rename(this.pathOf(claim), this.pathOf(next));
      await syncDir(this.claimDir);
    }
    return next;
  }

  async unmarkStarted(claim: Claim): Promise<Claim> {
    const next = { ...claim, startedAt: null };
    if (claim.startedAt !== null && claim.content.kind === "file") {
      await Deno.rename(this.pathOf(claim), this.pathOf(next));
      await syncDir(this.claimDir);
    }
    return next;
  }

  async remove(claim: Claim): Promise<void> {
    // Only a regular file's bytes ever reach the claim folder.
    if (claim.content.kind !== "file") return;
    try {
      await Deno.remove(this.pathOf(claim));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    await syncDir(this.claimDir);
  }

  async hasTrigger(): Promise<boolean> {
    return (await this.data.kindOf(TRIGGER_FILE)) !== null;
  }

  dataDirIdentity(): Promise<string | null> {
    return this.data.identity();
  }

  reportLeftTo(report: LeftReporter): void {
    this.reportLeft = report;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A claim file in the claim folder, read as carefully as anything in dataDir. */
function entryAt(path: string): Promise<EntryContent | null> {
  return Promise.resolve().then(() => readEntry(path, MAX_TRIGGER_BYTES + 1));
}
