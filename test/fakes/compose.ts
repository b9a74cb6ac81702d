/**
 * The operator's compose files in memory, for the update's pinning tests. Like the real
 * adapter it refuses to overwrite a file that changed since it was read, and keeps one backup.
 */

import { BACKUP_SUFFIX, type ComposeFiles } from "../../lib/compose/pin.ts";

export class FakeComposeFiles implements ComposeFiles {
  readonly files = new Map<string, string>();
  /** Paths read() throws for, with the reason (a symlink, say). */
  readonly unreadable = new Map<string, string>();
  readonly replaced: string[] = [];

  constructor(files: Record<string, string> = {}) {
    for (const [path, text] of Object.entries(files)) this.files.set(path, text);
  }

  read(path: string): Promise<string | null> {
    const why = this.unreadable.get(path);
    if (why) return Promise.reject(new Error(why));
    return Promise.resolve(this.files.get(path) ?? null);
  }

  replace(path: string, expected: string, next: string): Promise<{ backup: string }> {
    if (this.files.get(path) !== expected) {
      return Promise.reject(new Error(`${path} was changed while the update ran`));
    }
    const backup = `${path}${BACKUP_SUFFIX}`;
    this.files.set(backup, expected);
    this.files.set(path, next);
    this.replaced.push(path);
    return Promise.resolve({ backup });
  }
}
