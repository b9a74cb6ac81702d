/**
 * The log files under logDir: size-rotated, opened without following links.
 *
 * logDir is root's, but an operator may have pointed it somewhere another user (or the bot's
 * container, on a server set up by hand) can write. A link planted as `update.log` must not
 * make root append to, or chmod, the file it points at: each file is opened with O_NOFOLLOW
 * (and O_NONBLOCK, so a FIFO planted there cannot block the open), checked to be a regular
 * file through the open handle, and its mode is fixed through that same handle.
 *
 * Disk use is bounded: the live file holds at most `maxBytes` (plus one line), and rotation
 * keeps `maxFiles` older files (`update.log.1` … `update.log.<maxFiles>`), the oldest dropped.
 */

import {
  AT_FDCWD,
  close,
  fchmod,
  fstat,
  O_APPEND,
  O_CREAT,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_WRONLY,
  openat,
  write,
} from "./libc.ts";

export interface RotatingLogFileOptions {
  /** The live file's size limit in bytes; a line that would cross it starts a new file. */
  maxBytes: number;
  /** How many rotated files are kept besides the live one. */
  maxFiles: number;
  /** The file's permission bits, set at creation and fixed on an existing file. */
  mode?: number;
}

const OPEN_FLAGS = O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK;

/** Creates the log folder (and its parents) when missing, mode 0750. */
export function makeLogDir(dir: string): void {
  Deno.mkdirSync(dir, { recursive: true, mode: 0o750 });
}

/**
 * Opens `path` for appending: never through a link (ELOOP), only a regular file (else throws
 * an Error saying what it found), with its mode set through the handle. Returns the descriptor.
 */
export function openLogFile(path: string, mode = 0o640): number {
  const fd = openat(AT_FDCWD, path, OPEN_FLAGS, mode);
  try {
    const stat = fstat(fd);
    if (stat.kind !== "file") throw new Error(`'${path}' is not a regular file`);
    if ((stat.mode & 0o7777) !== mode) fchmod(fd, mode);
    return fd;
  } catch (err) {
    close(fd);
    throw err;
  }
}

/**
 * A log file that rotates by size. `write` appends one line; it throws only when the file
 * cannot be written (the caller keeps stderr). `close` releases the descriptor.
 */
export class RotatingLogFile {
  private fd: number | null;
  private size: number;
  private readonly mode: number;

  /** Opens (or creates) `path` at once, so a bad log folder is reported when logging starts. */
  constructor(readonly path: string, private readonly options: RotatingLogFileOptions) {
    this.mode = options.mode ?? 0o640;
    this.fd = openLogFile(path, this.mode);
    this.size = fstat(this.fd).size;
  }

  write(bytes: Uint8Array<ArrayBuffer>): void {
    if (this.size > 0 && this.size + bytes.length > this.options.maxBytes) this.rotate();
    if (this.fd === null) this.fd = openLogFile(this.path, this.mode);
    let done = 0;
    while (done < bytes.length) done += write(this.fd, bytes.subarray(done));
    this.size += bytes.length;
  }

  close(): void {
    if (this.fd !== null) close(this.fd);
    this.fd = null;
  }

  /** `x.log.4` → `x.log.5` … `x.log` → `x.log.1` (rename moves a link itself, never its target). */
  private rotate(): void {
    this.close();
    for (let i = this.options.maxFiles - 1; i >= 1; i--) {
      try {
        Deno.renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      } catch {
        // A missing older file is the normal case while the logs are young.
      }
    }
    if (this.options.maxFiles >= 1) Deno.renameSync(this.path, `${this.path}.1`);
    this.fd = openLogFile(this.path, this.mode);
    // A file swapped in between the rename and the open already has content: count it.
    this.size = fstat(this.fd).size;
  }
}
