/**
 * Watching one folder for changes through inotify (`Deno.watchFs`).
 */

import { constants, promises as fsp } from "node:fs";
import { join } from "node:path";

/** A running watch of one folder. */
export interface FolderWatch {
  /** Resolves when the watch ends by itself (the folder was removed) or was closed. */
  readonly ended: Promise<void>;
  /** Frees the watch if a hostile entry stalls it (see DenoFolderWatcher). Cheap; call it now and then. */
  unstall(): Promise<void>;
  /** Stops the watch. Does not wait for `ended` (see DenoFolderWatcher). */
  close(): Promise<void>;
}

export interface FolderWatcher {
  /**
   * Watches `dir` (not recursively) and calls `onChange` with the paths of each event.
   * Throws when the folder cannot be watched (it does not exist).
   */
  watch(dir: string, onChange: (paths: string[]) => void): FolderWatch;
}

/** Entries looked at per unstall: a folder stuffed with files must not make it expensive. */
const MAX_ENTRIES_SCANNED = 1_000;

/**
 * `Deno.watchFs`. Its inotify thread opens entries it gets events for, and an open of a FIFO
 * blocks until a writer comes: a FIFO in the folder stalls later events and makes `close()`
 * hang. `unstall()` opens each FIFO in the folder for writing without blocking and closes it
 * at once, which lets the stalled open return (nothing is written or read). A FIFO at the
 * trigger path is claimed and removed, which ends the stall; one under another name stalls
 * the watch again after each release, so detection then rests on the loop's rescan, and
 * `close()` leaves the inotify thread to the process exit rather than hang on it.
 */
export class DenoFolderWatcher implements FolderWatcher {
  watch(dir: string, onChange: (paths: string[]) => void): FolderWatch {
    const watcher = Deno.watchFs(dir, { recursive: false });
    let closed = false;
    const ended = (async () => {
      try {
        for await (const event of watcher) onChange(event.paths);
      } catch {
        // The folder went away or the watch was closed: `ended` tells the loop either way.
      }
    })();
    return {
      ended,
      unstall: async () => {
        await releaseFifoReaders(dir);
      },
      async close() {
        if (closed) return;
        closed = true;
        if ((await releaseFifoReaders(dir)) > 0) return;
        try {
          watcher.close();
        } catch {
          // Already closed.
        }
      },
    };
  }
}

/**
 * Opens each FIFO in `dir` write-only, non-blocking, without following links, and closes it.
 * Returns how many FIFOs it found.
 */
export async function releaseFifoReaders(dir: string): Promise<number> {
  let seen = 0;
  let fifos = 0;
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (++seen > MAX_ENTRIES_SCANNED) break;
      if (entry.isFile || entry.isDirectory || entry.isSymlink) continue;
      const path = join(dir, entry.name);
      try {
        const info = await Deno.lstat(path);
        if (!info.isFifo) continue;
        fifos++;
        const handle = await fsp.open(
          path,
          constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW,
        );
        await handle.close();
      } catch {
        // ENXIO: nobody is blocked on it; gone: nothing to do.
      }
    }
  } catch {
    // The folder is gone.
  }
  return fifos;
}
