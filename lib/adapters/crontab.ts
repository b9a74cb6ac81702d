/**
 * The cron entry that runs `hyperbot-ops health`: a file of our own in /etc/cron.d, so
 * installing and removing it never touches anyone else's entries. `FakeCronTable`
 * (test/fakes/crontab.ts) keeps the same file in memory.
 */

import { join } from "node:path";
import { writeFileAtomic } from "./files.ts";

export const CRON_DIR = "/etc/cron.d";
/** cron ignores files in /etc/cron.d whose names hold a dot: keep to letters, digits, '-', '_'. */
export const CRON_FILE_NAME = "hyperbot-ops";

export interface CronTable {
  /** Where the entry lives (for messages). */
  readonly path: string;
  /** The content of our cron file, or null when it is absent. */
  read(): Promise<string | null>;
  /** Replaces our cron file atomically (mode 0644, as cron requires). */
  write(content: string): Promise<void>;
  /** Removes our cron file; no error when it is absent. */
  remove(): Promise<void>;
}

/** Our own file in /etc/cron.d (cron rereads the folder every minute). */
export class CronDirTable implements CronTable {
  readonly path: string;
  constructor(dir = CRON_DIR, name = CRON_FILE_NAME) {
    this.path = join(dir, name);
  }

  async read(): Promise<string | null> {
    try {
      return await Deno.readTextFile(this.path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
  }

  async write(content: string): Promise<void> {
    // cron skips files that are group- or world-writable, and files that are not regular.
    await writeFileAtomic(this.path, content, { mode: 0o644 });
  }

  async remove(): Promise<void> {
    await Deno.remove(this.path).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}

/** The active (not commented) lines of a cron file that run `<command> health`. */
export function healthCronLines(content: string | null): string[] {
  if (content === null) return [];
  return content.split("\n").map((l) => l.trim()).filter((l) =>
    l !== "" && !l.startsWith("#") && /\shealth(\s|$)/.test(l)
  );
}
