/**
 * Watching one folder for changes through inotify (`Deno.watchFs`).
 */

/** A running watch of one folder. */
export interface FolderWatch {
  /** Resolves when the watch ends by itself (the folder was removed) or was closed. */
  readonly ended: Promise<void>;
  close(): void;
}

export interface FolderWatcher {
  /**
   * Watches `dir` (not recursively) and calls `onChange` with the paths of each event.
   * Throws when the folder cannot be watched (it does not exist).
   */
  watch(dir: string, onChange: (paths: string[]) => void): FolderWatch;
}

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
      close() {
        if (closed) return;
        closed = true;
        try {
          watcher.close();
        } catch {
          // Already closed.
        }
      },
    };
  }
}
