/**
 * Watching one folder for changes through inotify, called directly (lib/adapters/libc.ts).
 *
 * Not `Deno.watchFs`: its inotify thread opened the entries it got events for, following
 * links, so a FIFO in the folder (or one behind a link) blocked that open until a writer came,
 * which stalled later events and made `close()` hang. Here the kernel's events are read as
 * they are; nothing in the folder is opened, so no entry the container can create delays an
 * event or the close. The wait runs on a thread of Deno's pool and costs no CPU while idle.
 */

import {
  close,
  IN_ATTRIB,
  IN_CLOSE_WRITE,
  IN_CREATE,
  IN_DELETE_SELF,
  IN_IGNORED,
  IN_MODIFY,
  IN_MOVE_SELF,
  IN_MOVED_TO,
  IN_ONLYDIR,
  IN_Q_OVERFLOW,
  inotifyAddWatch,
  inotifyInit,
  parseInotify,
  pipe,
  pollReadable,
  read,
  write,
} from "./libc.ts";
import { join } from "node:path";

/** A running watch of one folder. */
export interface FolderWatch {
  /** Resolves when the watch ends by itself (the folder was removed) or was closed. */
  readonly ended: Promise<void>;
  /** Stops the watch; resolves when it has stopped. */
  close(): Promise<void>;
}

export interface FolderWatcher {
  /**
   * Watches `dir` (not recursively) and calls `onChange` with the paths of each event (an
   * empty list when events were lost: look at everything). Throws when the folder cannot be
   * watched (it does not exist).
   */
  watch(dir: string, onChange: (paths: string[]) => void): FolderWatch;
}

const MASK = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF |
  IN_MOVE_SELF | IN_ONLYDIR;

export class InotifyFolderWatcher implements FolderWatcher {
  watch(dir: string, onChange: (paths: string[]) => void): FolderWatch {
    const fd = inotifyInit();
    let wake: [number, number];
    try {
      inotifyAddWatch(fd, dir, MASK);
      wake = pipe();
    } catch (err) {
      close(fd);
      throw err;
    }
    const [wakeRead, wakeWrite] = wake;
    let closing = false;
    let finished = false;
    const ended = (async () => {
      const buf = new Uint8Array(64 * 1024);
      try {
        while (!closing) {
          const ready = await pollReadable([fd, wakeRead]);
          if (closing || ready.includes(wakeRead)) return;
          if (!ready.includes(fd)) continue;
          let n: number;
          try {
            n = read(fd, buf);
          } catch {
            continue; // EAGAIN: another wake-up took them
          }
          const events = parseInotify(buf, n);
          const paths: string[] = [];
          let gone = false;
          let overflow = false;
          for (const e of events) {
            if (e.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) gone = true;
            if (e.mask & IN_Q_OVERFLOW) overflow = true;
            paths.push(e.name ? join(dir, e.name) : dir);
          }
          onChange(overflow ? [] : paths);
          if (gone) return;
        }
      } catch {
        // The handle failed: `ended` tells the loop, which watches again.
      } finally {
        finished = true;
        close(fd);
        close(wakeRead);
        close(wakeWrite);
      }
    })();
    return {
      ended,
      async close() {
        if (!closing && !finished) {
          closing = true;
          try {
            write(wakeWrite, new Uint8Array(1));
          } catch {
            // Already ended and closed.
          }
        }
        await ended;
      },
    };
  }
}
