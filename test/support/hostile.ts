/**
 * The attacker's moves inside the bot's container, done by the test: a folder thousands of
 * levels deep (made from a handle, as `mkdir d; cd d` in a loop does), a folder handle kept open, a device node swapped in and out with
 * renameat2(RENAME_EXCHANGE), and a watch on a device node that counts who opens it.
 */

import { fileURLToPath } from "node:url";
import {
  AT_FDCWD,
  close,
  IN_OPEN,
  inotifyAddWatch,
  inotifyInit,
  mkdirat,
  O_DIRECTORY,
  O_RDONLY,
  openat,
  parseInotify,
  read,
} from "../../lib/adapters/libc.ts";

/**
 * Makes `<path>` a folder `depth` levels deep (d/d/d/…), deeper than any path can name: each
 * level is made from inside the one above (chdir), the way `mkdir d; cd d` does.
 */
export function makeDeepFolder(path: string, depth: number): void {
  Deno.mkdirSync(path);
  let fd = openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY);
  try {
    for (let i = 1; i < depth; i++) {
      mkdirat(fd, "d", 0o755);
      const next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
      close(fd);
      fd = next;
    }
  } finally {
    close(fd);
  }
}

/** A folder handle held open, as a process in the container would keep one. */
export function holdFolder(path: string): { fd: number; whereNow(): string; close(): void } {
  const fd = openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY);
  return {
    fd,
    /** Where the kernel says the handle points now. */
    whereNow: () => Deno.readLinkSync(`/proc/self/fd/${fd}`),
    close: () => close(fd),
  };
}

/** Counts opens of one inode (a device node and every hard link to it). */
export function countOpens(path: string): { count(): number; close(): void } {
  const fd = inotifyInit();
  inotifyAddWatch(fd, path, IN_OPEN);
  const buf = new Uint8Array(64 * 1024);
  let seen = 0;
  const drain = () => {
    while (true) {
      let n: number;
      try {
        n = read(fd, buf);
      } catch {
        return; // EAGAIN: no more events now
      }
      seen += parseInotify(buf, n).filter((e) => e.mask & IN_OPEN).length;
    }
  };
  return {
    count: () => {
      drain();
      return seen;
    },
    close: () => close(fd),
  };
}

/** A character device node like /dev/null (1:3) at `path`; needs root (CAP_MKNOD). */
export async function makeCharDevice(path: string): Promise<void> {
  const out = await new Deno.Command("mknod", { args: [path, "c", "1", "3"] }).output();
  if (!out.success) {
    throw new Error(
      `mknod ${path} failed (this test needs root): ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

const SWAP_LOOP = fileURLToPath(new URL("./swap_loop.ts", import.meta.url));

/**
 * Swaps `name` and `decoy` in a loop with renameat2(RENAME_EXCHANGE) in a child process until
 * stopped; whenever the decoy name has lost the device, links `device` there again.
 */
export function startSwapLoop(name: string, decoy: string, device: string): {
  stop(): Promise<number>;
} {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-ffi",
      "--allow-read",
      "--allow-write",
      SWAP_LOOP,
      name,
      decoy,
      device,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  return {
    async stop() {
      await child.stdin.close();
      const out = await child.output();
      return Number(new TextDecoder().decode(out.stdout).trim() || "0");
    },
  };
}
