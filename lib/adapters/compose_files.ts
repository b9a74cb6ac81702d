/**
 * The operator's compose files (`docker-compose.yml`, `.env`), read and replaced for pinning.
 *
 * These are the operator's files, not the bot's data folder; still, each edit is careful:
 * - A symbolic link at the file itself is refused (a warning names it): writing through it
 *   would change a file somewhere else, and renaming over it would replace the operator's
 *   link with a plain file. Links among the folders above it (say /opt/trading-system pointing
 *   to /srv/trading-system) are the operator's layout and are followed.
 * - A file whose real folder lies inside the bot's data folder is refused: the bot's container
 *   can write there, so what it says is not the operator's word.
 * - Only a regular UTF-8 file of at most 1 MiB is read (O_NOFOLLOW, checked to be the file
 *   lstat saw). A byte order mark is kept as it is.
 * - The new content goes to a temporary file in the same folder with the same mode, owner and
 *   group, is fsynced and renamed over the file; the content before goes to one backup,
 *   `<file>.hyperbot-ops.bak` (replaced on each pin, same mode and owner: a `.env` may hold
 *   secrets). The file is read again just before: an edit made meanwhile is not overwritten.
 */

import { basename, dirname, join } from "node:path";
import { BACKUP_SUFFIX, type ComposeFiles } from "../compose/pin.ts";
import { syncDir } from "./files.ts";

const MAX_BYTES = 1024 * 1024;

export class OperatorComposeFiles implements ComposeFiles {
  /** `dataDir`: the bot's container-writable folder, where no compose file is trusted. */
  constructor(private readonly options: { dataDir: string }) {}

  async read(path: string): Promise<string | null> {
    return (await this.readChecked(path))?.text ?? null;
  }

  async replace(path: string, expected: string, next: string): Promise<{ backup: string }> {
    const current = await this.readChecked(path);
    if (current === null) throw new Error(`${path} disappeared`);
    if (current.text !== expected) {
      throw new Error(`${path} was changed while the update ran; not overwriting it`);
    }
    const { mode, uid, gid } = current.stat;
    const backup = `${path}${BACKUP_SUFFIX}`;
    await writeBeside(backup, current.bytes, { mode, uid, gid });
    await writeBeside(path, new TextEncoder().encode(next), { mode, uid, gid });
    return { backup };
  }

  private async readChecked(
    path: string,
  ): Promise<{ text: string; bytes: Uint8Array; stat: Deno.FileInfo & { mode: number } } | null> {
    let entry: Deno.FileInfo;
    try {
      entry = await Deno.lstat(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
    if (entry.isSymlink) {
      throw new Error(`${path} is a symbolic link; edit the file it points to by hand`);
    }
    if (!entry.isFile) throw new Error(`${path} is not a regular file`);
    if (entry.size > MAX_BYTES) throw new Error(`${path} is larger than 1 MiB`);
    await this.checkOutsideDataDir(path);
    const { constants, promises: fsp } = await nodeFs();
    const handle = await fsp.open(
      path,
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    );
    let bytes: Uint8Array;
    try {
      const opened = await handle.stat();
      if (opened.ino !== entry.ino || opened.dev !== entry.dev || !opened.isFile()) {
        throw new Error(`${path} changed while it was opened`);
      }
      bytes = new Uint8Array(await handle.readFile());
    } finally {
      await handle.close();
    }
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
    } catch {
      throw new Error(`${path} is not UTF-8 text`);
    }
    return { text, bytes, stat: { ...entry, mode: (entry.mode ?? 0o644) & 0o7777 } };
  }

  private async checkOutsideDataDir(path: string) {
    const [folder, data] = await Promise.all([
      Deno.realPath(dirname(path)),
      Deno.realPath(this.options.dataDir).catch(() => this.options.dataDir),
    ]);
    if (folder === data || folder.startsWith(data.endsWith("/") ? data : `${data}/`)) {
      throw new Error(
        `${path} is inside the bot's data folder, which the bot's container can write; ` +
          "keep compose files outside it",
      );
    }
  }
}

/** Atomic write of `bytes` to `path`: a temporary file in the same folder, then rename. */
async function writeBeside(
  path: string,
  bytes: Uint8Array,
  owner: { mode: number; uid: number | null; gid: number | null },
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  const { constants, promises: fsp } = await nodeFs();
  const handle = await fsp.open(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    try {
      await handle.writeFile(bytes);
      // Only when it differs: under the unit, changing an owner takes CAP_CHOWN.
      const made = await handle.stat();
      if (
        owner.uid !== null && owner.gid !== null &&
        (made.uid !== owner.uid || made.gid !== owner.gid)
      ) {
        await handle.chown(owner.uid, owner.gid);
      }
      await handle.chmod(owner.mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  await syncDir(dir);
}

/** node:fs on first use: its import alone costs an idle watcher ~8 MiB (issue 9). */
function nodeFs(): Promise<typeof import("node:fs")> {
  return import("node:fs");
}
