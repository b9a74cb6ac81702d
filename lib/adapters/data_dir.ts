/**
 * The bot's data folder, `dataDir`: the one module that opens, reads, writes, renames, lists or
 * removes anything in it. The bot's container controls every entry there (files, folders,
 * links, FIFOs, sockets, device nodes, hard links, handles kept open, races), so each access
 * here holds against that, and a fix to the boundary is made here once:
 *
 * - Reading: the name is opened with O_PATH|O_NOFOLLOW (which reaches no device driver, does
 *   not block on a FIFO and follows no link), the handle's fstat must say "regular file", and
 *   only then is that same file opened for reading through /proc/self/fd (checked again).
 *   Whatever is swapped in at any moment, no open for reading or writing lands on a device,
 *   FIFO, socket or link.
 * - Writing: a new file under a random name with O_CREAT|O_EXCL (a planted link makes it fail,
 *   it is never followed), its mode set through the handle, then rename over the name.
 * - Removing: unlink of the name; a folder is emptied by an iterative walk relative to folder
 *   handles (no recursion, no path lookups a swapped link could redirect), bounded in entries
 *   and time: a folder it cannot clear is left where it is and said so.
 *
 * The same atomic write and bounded removal serve the root-owned stateDir too.
 */

import { join } from "node:path";
import {
  AT_FDCWD,
  AT_REMOVEDIR,
  close,
  fchmod,
  fstat,
  fsync,
  type Kind,
  lstatAt,
  O_CREAT_EXCL_WRONLY,
  O_DIRECTORY,
  O_NOCTTY,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_PATH,
  O_RDONLY,
  openat,
  read,
  readDirBatch,
  rewind,
  type Stat,
  SysError,
  unlinkat,
  write,
} from "./libc.ts";

export type EntryKind = Kind;

/** A regular file's first bytes, or only the kind of anything else. */
export interface EntryContent {
  kind: EntryKind;
  /** At most the bytes asked for; null unless kind is "file". */
  bytes: Uint8Array | null;
}

function code(err: unknown): string | undefined {
  if (err instanceof SysError) return err.code;
  if (err instanceof Deno.errors.NotFound) return "ENOENT";
  return (err as { code?: string })?.code;
}

export function isNotFound(err: unknown): boolean {
  return code(err) === "ENOENT";
}

/**
 * Reads at most `maxBytes` of the entry at `path` if it is a regular file, without following
 * a link and without any open for reading reaching anything else (see the module comment).
 * Returns null when nothing is there; the kind alone for anything but a regular file.
 */
export function readEntry(path: string, maxBytes: number): EntryContent | null {
  let pathFd: number;
  try {
    pathFd = openat(AT_FDCWD, path, O_PATH | O_NOFOLLOW);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
  try {
    const seen = fstat(pathFd);
    if (seen.kind !== "file") return { kind: seen.kind, bytes: null };
    // The handle names this very inode: reopening it cannot land on anything swapped in since.
    const fd = openat(AT_FDCWD, `/proc/self/fd/${pathFd}`, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    try {
      const opened = fstat(fd);
      if (opened.kind !== "file" || opened.id !== seen.id) return { kind: "other", bytes: null };
      const buf = new Uint8Array(Math.max(0, Math.min(maxBytes, opened.size)));
      let filled = 0;
      while (filled < buf.length) {
        const got = read(fd, buf, filled);
        if (got === 0) break;
        filled += got;
      }
      return { kind: "file", bytes: buf.slice(0, filled) };
    } finally {
      close(fd);
    }
  } finally {
    close(pathFd);
  }
}

/** What is at `path`, without following a link; null when nothing is. */
export function entryKind(path: string): EntryKind | null {
  try {
    return lstatAt(AT_FDCWD, path).kind;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/**
 * Writes a file atomically: a new file under a random name in the same folder, fsync, rename,
 * fsync of the folder. A reader sees the old content or the new, never a part.
 *
 * Safe in a folder the bot's container can write to: the temporary file is created with
 * O_EXCL (a planted link makes the open fail instead of being followed), it gets its mode
 * through its handle (fchmod; no chmod by path, which would follow a link swapped in
 * afterwards, and no change of the process umask), and rename
 * replaces a link at `path` rather than writing through it.
 */
export async function writeFileAtomic(
  path: string,
  content: string | Uint8Array,
  options: { mode?: number } = {},
): Promise<void> {
  const mode = options.mode ?? 0o640;
  const dir = join(path, "..");
  const tmp = join(dir, `.${crypto.randomUUID()}.tmp`);
  const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
  // O_EXCL|O_NOFOLLOW: a planted name or link makes the open fail. The mode is set through the
  // handle: the process umask (027, main.ts) narrowed the one given at creation.
  const fd = openat(AT_FDCWD, tmp, O_CREAT_EXCL_WRONLY | O_NOFOLLOW | O_NOCTTY, mode);
  try {
    fchmod(fd, mode);
    const buf = new Uint8Array(bytes);
    let written = 0;
    while (written < buf.length) written += write(fd, buf.subarray(written));
    fsync(fd);
  } finally {
    close(fd);
  }
  try {
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  await syncDir(dir);
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

/** How much one removal (or a set of them sharing it) may do. */
export class RemovalBudget {
  private ops = 0;
  private readonly deadline: number;
  constructor(
    private readonly maxOps = DEFAULT_REMOVAL_OPS,
    maxMs = DEFAULT_REMOVAL_MS,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.deadline = now() + maxMs;
  }
  /** Counts one system call; false once the budget is spent. */
  take(): boolean {
    this.ops++;
    return this.ops <= this.maxOps && (this.ops % 64 !== 0 || this.now() < this.deadline);
  }
  get spent(): boolean {
    return this.ops > this.maxOps || this.now() >= this.deadline;
  }
  /** System calls counted so far. */
  get used(): number {
    return this.ops;
  }
}

/**
 * System calls one removal may make (a chain 12 000 deep takes about 85 000; on a busy ext4
 * each folder removal alone can take a millisecond, so such a chain is cleared over several
 * starts).
 */
export const DEFAULT_REMOVAL_OPS = 200_000;
/** Wall time one removal may take; short enough that a SIGTERM is still answered in time. */
export const DEFAULT_REMOVAL_MS = 800;

export interface Removal {
  /** True when the entry is gone (or was never there). */
  removed: boolean;
  /** Why it was left, when it was. */
  reason?: string;
}

const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK;
const DIRENT_BUFFER = 32 * 1024;
/** The walk hands the event loop a turn this often, so signals and timers are not held up. */
const YIELD_EVERY_OPS = 512;

/**
 * Removes `<dir>/<name>` whatever it is, never following a link. A folder is emptied by an
 * iterative depth-first walk that holds one folder handle at a time and climbs back through
 * "..", checking that each folder it climbs to is the one it came down from (a folder moved
 * meanwhile ends the walk rather than let it wander). Bounded by `budget`; what it cannot
 * clear (budget spent, a folder moved, an entry it may not remove) is left, and the result
 * says why. Never throws for the entry's sake; `dir` itself must be trusted.
 */
export async function removeEntry(
  dir: string,
  name: string,
  budget: RemovalBudget = new RemovalBudget(),
): Promise<Removal> {
  const top = join(dir, name);
  try {
    budget.take();
    unlinkat(AT_FDCWD, top, 0);
    return { removed: true };
  } catch (err) {
    if (isNotFound(err)) return { removed: true };
    if (code(err) !== "EISDIR") return { removed: false, reason: describe(err) };
  }
  let fd: number;
  try {
    fd = openat(AT_FDCWD, top, DIR_FLAGS);
  } catch (err) {
    if (isNotFound(err)) return { removed: true };
    const c = code(err);
    if (c !== "ENOTDIR" && c !== "ELOOP") return { removed: false, reason: describe(err) };
    // Swapped for a file or a link since: try once more as a plain entry.
    try {
      budget.take();
      unlinkat(AT_FDCWD, top, 0);
      return { removed: true };
    } catch (again) {
      if (isNotFound(again)) return { removed: true };
      return { removed: false, reason: describe(again) };
    }
  }
  const buf = new Uint8Array(DIRENT_BUFFER);
  // The folders walked down through: their names in their parents, and who they are.
  const path: { name: string | Uint8Array; id: string }[] = [{ name, id: fstat(fd).id }];
  let yieldedAt = budget.used;
  try {
    while (true) {
      if (budget.used - yieldedAt >= YIELD_EVERY_OPS) {
        yieldedAt = budget.used;
        await new Promise((r) => setTimeout(r, 0));
      }
      if (budget.spent) return { removed: false, reason: "too many entries to remove in time" };
      const step = clearFiles(fd, buf, budget);
      if (step.failed) return { removed: false, reason: step.failed };
      if (step.subdir !== null) {
        let child: number;
        try {
          budget.take();
          child = openat(fd, step.subdir, DIR_FLAGS);
        } catch (err) {
          const c = code(err);
          if (c === "ENOENT") continue;
          if (c === "ENOTDIR" || c === "ELOOP") {
            // No longer a folder: remove it as what it is now.
            tryUnlink(fd, step.subdir, 0, budget);
            continue;
          }
          return { removed: false, reason: describe(err) };
        }
        close(fd);
        fd = child;
        path.push({ name: step.subdir, id: fstat(fd).id });
        continue;
      }
      // This folder is empty: climb to its parent and remove it there.
      const here = path.pop()!;
      if (path.length === 0) {
        close(fd);
        fd = -1;
        budget.take();
        try {
          unlinkat(AT_FDCWD, top, AT_REMOVEDIR);
          return { removed: true };
        } catch (err) {
          const c = code(err);
          if (c === "ENOENT") return { removed: true };
          if (c !== "ENOTEMPTY" && c !== "EEXIST") return { removed: false, reason: describe(err) };
          // Filled again meanwhile: walk it again.
          try {
            fd = openat(AT_FDCWD, top, DIR_FLAGS);
          } catch (err) {
            if (isNotFound(err)) return { removed: true };
            return { removed: false, reason: describe(err) };
          }
          path.push({ name, id: fstat(fd).id });
          continue;
        }
      }
      budget.take();
      const up = openat(fd, "..", DIR_FLAGS);
      let upStat: Stat;
      try {
        upStat = fstat(up);
      } catch (err) {
        close(up);
        throw err;
      }
      close(fd);
      fd = up;
      if (upStat.id !== path[path.length - 1].id) {
        return { removed: false, reason: "a folder inside it was moved during the removal" };
      }
      tryUnlink(fd, here.name, AT_REMOVEDIR, budget);
    }
  } catch (err) {
    return { removed: false, reason: describe(err) };
  } finally {
    if (fd >= 0) close(fd);
  }
}

/**
 * Unlinks every non-folder entry of the folder handle; stops at the first subfolder and
 * returns its name (null when there is none: the folder is empty). `failed` says why an entry
 * could not be removed.
 */
function clearFiles(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  budget: RemovalBudget,
): { subdir: Uint8Array | null; failed?: string } {
  budget.take();
  rewind(fd);
  while (true) {
    if (!budget.take()) return { subdir: null, failed: "too many entries to remove in time" };
    const batch = readDirBatch(fd, buf);
    if (batch.length === 0) return { subdir: null };
    for (const entry of batch) {
      // The raw bytes: a name that is not UTF-8 would come back altered from a string.
      if (entry.kind === "directory") return { subdir: entry.raw };
      if (!budget.take()) return { subdir: null, failed: "too many entries to remove in time" };
      try {
        unlinkat(fd, entry.raw, 0);
      } catch (err) {
        const c = code(err);
        if (c === "ENOENT") continue;
        if (c === "EISDIR") return { subdir: entry.raw };
        return { subdir: null, failed: describe(err) };
      }
    }
  }
}

function tryUnlink(
  fd: number,
  name: string | Uint8Array,
  flags: number,
  budget: RemovalBudget,
): void {
  budget.take();
  try {
    unlinkat(fd, name, flags);
  } catch {
    // Gone, refilled or renamed: the next pass over the folder sees what is there now.
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The names of the entries in `dir` that start with `prefix`; at most `max` of them. */
export async function listNames(dir: string, prefix: string, max: number): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.startsWith(prefix)) continue;
    names.push(entry.name);
    if (names.length >= max) break;
  }
  return names;
}

/**
 * The data folder. Every name is one entry directly in it (never a path through it); the
 * folder itself is the host's (its parent is not the container's), so its own path is used.
 */
export class DataDir {
  constructor(readonly path: string) {}

  private at(name: string): string {
    if (name === "" || name.includes("/") || name === "." || name === "..") {
      throw new Error(`not a name in the data folder: ${name}`);
    }
    return join(this.path, name);
  }

  /** See readEntry. Null when nothing is there. */
  read(name: string, maxBytes: number): Promise<EntryContent | null> {
    return Promise.resolve().then(() => readEntry(this.at(name), maxBytes));
  }

  /** What the entry is (a link is not followed); null when nothing is there. */
  kindOf(name: string): Promise<EntryKind | null> {
    return Promise.resolve().then(() => entryKind(this.at(name)));
  }

  /** Replaces the entry with a new regular file (see writeFileAtomic). */
  write(name: string, content: string | Uint8Array, mode: number): Promise<void> {
    return writeFileAtomic(this.at(name), content, { mode });
  }

  /** Renames an entry within the folder (rename(2): nothing is followed). */
  rename(from: string, to: string): Promise<void> {
    return Deno.rename(this.at(from), this.at(to));
  }

  /** See removeEntry. */
  remove(name: string, budget?: RemovalBudget): Promise<Removal> {
    this.at(name);
    return removeEntry(this.path, name, budget);
  }

  /** Names starting with `prefix`, at most `max`. */
  list(prefix: string, max: number): Promise<string[]> {
    return listNames(this.path, prefix, max);
  }

  /** fsync of the folder, so a rename in it survives a power cut. */
  sync(): Promise<void> {
    return syncDir(this.path);
  }

  /** `dev:ino` of the folder, or null when it does not exist (tells a recreated one apart). */
  async identity(): Promise<string | null> {
    try {
      const info = await Deno.stat(this.path);
      return info.isDirectory ? `${info.dev}:${info.ino}` : null;
    } catch {
      return null;
    }
  }
}
