/**
 * The watch on the data folder: inotify events for the trigger wake the loop; the watch is
 * (re)started when it ended or when dataDir was removed and recreated, and the loop is told
 * while the folder is missing so it polls for it instead.
 */

import { basename } from "node:path";
import type { TriggerInbox } from "../adapters/trigger_inbox.ts";
import { TRIGGER_FILE } from "../adapters/files.ts";
import type { FolderWatch, FolderWatcher } from "../adapters/fs_watcher.ts";
import { errorText } from "../errors.ts";
import type { Logger } from "../log.ts";

export class DataFolderWatch {
  private folder: FolderWatch | null = null;
  private ended = false;
  /** `dev:ino` of the folder being watched; null while it is missing or cannot be watched. */
  private id: string | null = null;
  private missingLogged = false;

  constructor(
    private readonly deps: { inbox: TriggerInbox; watcher: FolderWatcher; logger: Logger },
    private readonly dataDir: string,
    /** Called when the trigger may have changed: an event for it, or the watch restarted. */
    private readonly wake: () => void,
  ) {}

  /** Whether the last check found no folder to watch (the loop then polls for it). */
  get missing(): boolean {
    return this.id === null;
  }

  /** (Re)starts the folder watch when it ended or dataDir was recreated. */
  async check(): Promise<void> {
    const log = this.deps.logger;
    const id = await this.deps.inbox.dataDirIdentity();
    if (id === null) {
      if (this.folder) {
        await this.folder.close();
        this.folder = null;
      }
      this.id = null;
      if (!this.missingLogged) {
        log.warn("data folder is missing; waiting for it to come back", { dataDir: this.dataDir });
        this.missingLogged = true;
      }
      return;
    }
    if (this.folder && !this.ended && id === this.id) return;
    await this.folder?.close();
    this.folder = null;
    try {
      const folder = this.deps.watcher.watch(this.dataDir, (paths) => this.onEvent(paths));
      this.folder = folder;
      this.ended = false;
      folder.ended.then(() => {
        if (this.folder === folder) {
          this.ended = true;
          // Look again soon: the folder may have been removed and recreated.
          this.wake();
        }
      });
      if (this.missingLogged || (this.id !== null && this.id !== id)) {
        log.info("data folder is back; watching it again", { dataDir: this.dataDir });
        // A trigger may have been written before the watch started.
        this.wake();
      }
      this.id = id;
      this.missingLogged = false;
    } catch (err) {
      log.debug("cannot watch the data folder yet", { error: errorText(err) });
      this.id = null;
    }
  }

  async close(): Promise<void> {
    await this.folder?.close();
  }

  private onEvent(paths: string[]) {
    // Our own status and history writes land in the same folder: only the trigger matters.
    if (
      paths.length === 0 ||
      paths.some((p) => basename(p) === TRIGGER_FILE || p === this.dataDir)
    ) {
      this.wake();
    }
  }
}
