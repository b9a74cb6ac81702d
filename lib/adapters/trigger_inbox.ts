/**
 * Claiming the trigger: moving `<dataDir>/.update_trigger` out of the container's reach into
 * `<stateDir>/claimed/` with one rename, so a crash can neither run it twice nor lose it, and
 * reading it without following links or blocking on a FIFO.
 *
 * A claim moves through the claim folder by name:
 *   `<stamp>`                     claimed, not yet handed to the update
 *   `<stamp>.started-<ms>`        handed to the update at <ms> (epoch milliseconds)
 * and is removed when the update has ended (or the trigger was rejected).
 *
 * When stateDir is on another filesystem than dataDir (rename fails with EXDEV), the trigger
 * is first renamed inside dataDir to `.update_trigger.claimed-<stamp>` (still atomic, and the
 * writer's next trigger cannot be lost), its bytes are copied into the claim folder, fsynced,
 * and only then is the staged file removed. A crash between the two is finished at start.
 */

import { constants, promises as fsp } from "node:fs";
import { join } from "node:path";
import { ensureDir, syncDir, TRIGGER_FILE } from "./files.ts";
import { type ClaimedContent, type EntryKind, MAX_TRIGGER_BYTES } from "../watch/trigger.ts";

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
}

let counter = 0;
function newStamp(now: number): string {
  counter = (counter + 1) % 1_000_000;
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(16).padStart(8, "0");
  return `${String(now).padStart(15, "0")}-${String(counter).padStart(6, "0")}-${rand}`;
}

const STAMP_RE = /^(\d{15})-\d{6}-[0-9a-f]{8}(?:\.started-(\d+))?$/;

export function kindOf(info: Deno.FileInfo): EntryKind {
  if (info.isSymlink) return "symlink";
  if (info.isFile) return "file";
  if (info.isDirectory) return "directory";
  if (info.isFifo) return "fifo";
  if (info.isSocket) return "socket";
  if (info.isBlockDevice) return "block device";
  if (info.isCharDevice) return "character device";
  return "other";
}

function isNotFound(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound || (err as { code?: string })?.code === "ENOENT";
}

function isCrossDevice(err: unknown): boolean {
  return (err as { code?: string })?.code === "EXDEV" || /os error 18\b/.test(String(err));
}

/**
 * Reads at most MAX_TRIGGER_BYTES + 1 bytes of a regular file without following a symlink
 * (O_NOFOLLOW), without blocking on a FIFO (O_NONBLOCK), and only if the file opened is the
 * one lstat saw (same dev and inode). Returns the kind instead when it is not a regular file.
 */
export async function readRegularFile(path: string): Promise<ClaimedContent> {
  const before = await Deno.lstat(path);
  const kind = kindOf(before);
  if (kind !== "file") return { kind, bytes: null };
  let handle;
  try {
    handle = await fsp.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as { code?: string }).code === "ELOOP") return { kind: "symlink", bytes: null };
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) return { kind: st.isDirectory() ? "directory" : "other", bytes: null };
    if (Number(st.dev) !== before.dev || Number(st.ino) !== before.ino) {
      // Swapped between lstat and open: refuse rather than read something else.
      return { kind: "other", bytes: null };
    }
    const buf = new Uint8Array(MAX_TRIGGER_BYTES + 1);
    let filled = 0;
    while (filled < buf.length) {
      const { bytesRead } = await handle.read(buf, filled, buf.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { kind, bytes: buf.slice(0, filled) };
  } finally {
    await handle.close();
  }
}

/**
 * Lets go of anyone blocked opening a FIFO for reading. The inotify thread behind
 * `Deno.watchFs` opens new entries and blocks forever on a FIFO without a writer, which stops
 * events and hangs `close()`. Opening it for writing without blocking (and writing nothing)
 * lets such an open return with an immediate EOF. Never opens it for reading.
 */
async function releaseFifoReaders(path: string): Promise<void> {
  for (const delay of [0, 10, 40]) {
    if (delay) await new Promise((r) => setTimeout(r, delay));
    try {
      const handle = await fsp.open(
        path,
        constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW,
      );
      await handle.close();
    } catch {
      // ENXIO: no reader (yet); anything else: nothing to release.
    }
  }
}

/** Removes whatever the entry is, never following a link (a directory is removed with its contents). */
async function removeEntry(path: string): Promise<void> {
  try {
    const info = await Deno.lstat(path);
    if (info.isFifo) await releaseFifoReaders(path);
    await Deno.remove(path, { recursive: info.isDirectory });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

async function writeBytesDurably(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
}

export class FileTriggerInbox implements TriggerInbox {
  private readonly claimDir: string;
  private readonly triggerPath: string;

  constructor(
    private readonly dataDir: string,
    stateDir: string,
    private readonly now: () => number = Date.now,
  ) {
    this.claimDir = join(stateDir, CLAIM_DIR);
    this.triggerPath = join(dataDir, TRIGGER_FILE);
  }

  async claim(): Promise<Claim | null> {
    try {
      await Deno.lstat(this.triggerPath);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    await ensureDir(this.claimDir, 0o700);
    const claimedAt = this.now();
    const stamp = newStamp(claimedAt);
    const target = join(this.claimDir, stamp);
    try {
      // rename(2) moves the entry itself: a symlink stays a symlink, nothing is followed.
      await Deno.rename(this.triggerPath, target);
    } catch (err) {
      if (isNotFound(err)) return null;
      if (!isCrossDevice(err)) throw err;
      return await this.claimAcrossFilesystems(stamp, claimedAt);
    }
    await syncDir(this.claimDir);
    await syncDir(this.dataDir);
    return await this.open(stamp, claimedAt, null);
  }

  private async claimAcrossFilesystems(stamp: string, claimedAt: number): Promise<Claim | null> {
    const staged = join(this.dataDir, STAGE_PREFIX + stamp);
    try {
      await Deno.rename(this.triggerPath, staged);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    await syncDir(this.dataDir);
    return await this.finishStage(stamp, claimedAt);
  }

  /** Copies a staged trigger into the claim folder, then removes it from dataDir. */
  private async finishStage(stamp: string, claimedAt: number): Promise<Claim> {
    const staged = join(this.dataDir, STAGE_PREFIX + stamp);
    const content = await readRegularFile(staged);
    if (content.kind === "file" && content.bytes) {
      await writeBytesDurably(join(this.claimDir, stamp), content.bytes);
      await syncDir(this.claimDir);
    }
    await removeEntry(staged);
    await syncDir(this.dataDir);
    return { stamp, claimedAt, startedAt: null, content };
  }

  /** Reads a claimed entry; a non-regular one is removed at once. */
  private async open(name: string, claimedAt: number, startedAt: number | null): Promise<Claim> {
    const path = join(this.claimDir, name);
    const content = await readRegularFile(path);
    if (content.kind !== "file") await removeEntry(path);
    return { stamp: name.replace(/\.started-\d+$/, ""), claimedAt, startedAt, content };
  }

  async pending(): Promise<Claim[]> {
    await ensureDir(this.claimDir, 0o700);
    // Finish the cross-filesystem claim a killed process left staged in dataDir. The folder is
    // the container's, which can plant any number of such names: only the newest is finished
    // (only the newest request would run anyway); the others are removed unread, as they come.
    try {
      const staged: { name: string; stamp: string; at: number }[] = [];
      for await (const entry of Deno.readDir(this.dataDir)) {
        if (!entry.name.startsWith(STAGE_PREFIX)) continue;
        const stamp = entry.name.slice(STAGE_PREFIX.length);
        const m = STAMP_RE.exec(stamp);
        if (!m || m[2] !== undefined) continue;
        staged.push({ name: entry.name, stamp, at: Number(m[1]) });
        if (staged.length < 2) continue;
        // Keep the newer of the two in slot 0; remove the other now.
        if (staged[1].stamp > staged[0].stamp) staged.reverse();
        await removeEntry(join(this.dataDir, staged.pop()!.name));
      }
      const newest = staged[0];
      if (newest) {
        if (await exists(join(this.claimDir, newest.stamp))) {
          await removeEntry(join(this.dataDir, newest.name));
        } else {
          await this.finishStage(newest.stamp, newest.at);
        }
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const claims: Claim[] = [];
    for await (const entry of Deno.readDir(this.claimDir)) {
      const m = STAMP_RE.exec(entry.name);
      if (!m) {
        // Our own leftovers (a .tmp from a killed copy): nothing anyone asked for.
        await removeEntry(join(this.claimDir, entry.name));
        continue;
      }
      const startedAt = m[2] === undefined ? null : Number(m[2]);
      claims.push(await this.open(entry.name, Number(m[1]), startedAt));
    }
    return claims.sort((a, b) => a.stamp < b.stamp ? -1 : a.stamp > b.stamp ? 1 : 0);
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
    await removeEntry(this.pathOf(claim));
    await syncDir(this.claimDir);
  }

  async hasTrigger(): Promise<boolean> {
    return await exists(this.triggerPath);
  }

  async dataDirIdentity(): Promise<string | null> {
    try {
      const info = await Deno.stat(this.dataDir);
      return info.isDirectory ? `${info.dev}:${info.ino}` : null;
    } catch {
      return null;
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}
