/**
 * The watcher's resident memory at rest. Most of it is not the watcher's own: it is the code of
 * the deno executable (and libc) that start-up ran once (module loading, parsing, permission
 * and npm set-up) and an idle process never runs again. Those pages are clean, read-only
 * mappings of files: the kernel keeps them in its page cache, shared with every other process
 * that maps the same file, and would reclaim them under memory pressure anyway. Dropping them
 * from this process's page tables (madvise MADV_DONTNEED) makes the resident set what the idle
 * loop really uses; a page needed again is mapped back from the page cache on first touch.
 *
 * Only mappings that are file-backed, not writable and hold no dirty or anonymous page are
 * touched, so no data can be lost: what is dropped is exactly what the file holds.
 */

import { AT_FDCWD, close, MADV_DONTNEED, madvise, O_RDONLY, openat, read } from "./libc.ts";

interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  path: string;
  rssKiB: number;
  dirtyKiB: number;
  anonKiB: number;
}

/** The mappings of /proc/self/smaps. */
export function parseSmaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  let current: Mapping | null = null;
  for (const line of text.split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      current = {
        start: BigInt(`0x${head[1]}`),
        end: BigInt(`0x${head[2]}`),
        perms: head[3],
        path: head[4],
        rssKiB: 0,
        dirtyKiB: 0,
        anonKiB: 0,
      };
      out.push(current);
      continue;
    }
    const field = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (!field || !current) continue;
    const kib = Number(field[2]);
    if (field[1] === "Rss") current.rssKiB = kib;
    else if (field[1] === "Private_Dirty" || field[1] === "Shared_Dirty") current.dirtyKiB += kib;
    else if (field[1] === "Anonymous") current.anonKiB = kib;
  }
  return out;
}

/**
 * Whether dropping the mapping's pages can lose nothing: a clean, read-only file mapping,
 * private (the executable's code and constants, libraries) or shared (Deno's read-only caches).
 */
export function isDroppable(m: Mapping): boolean {
  return m.path.startsWith("/") && m.perms[0] === "r" && m.perms[1] === "-" &&
    (m.perms[3] === "p" || m.perms[3] === "s") && m.dirtyKiB === 0 && m.anonKiB === 0 &&
    m.rssKiB > 0;
}

/**
 * Drops the resident pages of this process's clean, read-only file mappings (its executable's
 * code, shared libraries). Returns the KiB that were resident there. Linux only; where
 * /proc/self/smaps cannot be read it does nothing.
 */
export function releaseCodePages(): number {
  let text: string;
  try {
    text = readProcFile("/proc/self/smaps");
  } catch {
    return 0;
  }
  let released = 0;
  for (const m of parseSmaps(text)) {
    if (!isDroppable(m)) continue;
    try {
      madvise(m.start, m.end - m.start, MADV_DONTNEED);
      released += m.rssKiB;
    } catch {
      // A mapping that went away meanwhile: nothing to drop.
    }
  }
  return released;
}

/**
 * A /proc file, read through the C library: Deno wants --allow-all for /proc/self, which the
 * watcher does not have (it has --allow-ffi for lib/adapters/libc.ts).
 */
function readProcFile(path: string): string {
  const fd = openat(AT_FDCWD, path, O_RDONLY);
  try {
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = read(fd, buf);
      if (n === 0) break;
      chunks.push(buf.slice(0, n));
    }
    const all = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    return new TextDecoder().decode(all);
  } finally {
    close(fd);
  }
}
