/**
 * The few Linux system calls Deno does not offer, through FFI to the C library: opening with
 * O_PATH (an open that never reaches a device driver, never blocks on a FIFO and follows no
 * link), statx of a handle, the *at calls relative to a folder handle (so a walk through a
 * folder the container controls cannot be redirected by a link swapped into its path), and
 * inotify without anything opening the entries it reports.
 *
 * Mechanism only: lib/adapters/data_dir.ts decides what may be opened, and how.
 * Needs --allow-ffi (lib/runtime_flags.ts, deno.json's compile task).
 */

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_EMPTY_PATH = 0x1000;

// Linux's values (asm-generic, as on x86_64 and aarch64, except the two aarch64 moves). Written
// out instead of read from node:fs, whose import alone costs the idle watcher ~8 MiB (issue 9).
const AARCH64 = Deno.build.arch === "aarch64";
export const O_RDONLY = 0;
export const O_WRONLY = 0o1;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DIRECTORY = AARCH64 ? 0o40000 : 0o200000;
export const O_NOFOLLOW = AARCH64 ? 0o100000 : 0o400000;
export const O_PATH = 0o10000000;
export const O_CLOEXEC = 0o2000000;
/** O_WRONLY|O_CREAT|O_EXCL (tests make files through a folder handle with it). */
export const O_CREAT_EXCL_WRONLY = O_WRONLY | O_CREAT | O_EXCL;

export const IN_NONBLOCK = O_NONBLOCK;
export const IN_CLOEXEC = O_CLOEXEC;
export const IN_MODIFY = 0x2;
export const IN_ATTRIB = 0x4;
export const IN_CLOSE_WRITE = 0x8;
export const IN_MOVED_FROM = 0x40;
export const IN_MOVED_TO = 0x80;
export const IN_CREATE = 0x100;
export const IN_DELETE = 0x200;
export const IN_DELETE_SELF = 0x400;
export const IN_MOVE_SELF = 0x800;
export const IN_Q_OVERFLOW = 0x4000;
export const IN_IGNORED = 0x8000;
export const IN_ONLYDIR = 0x1000000;
export const IN_OPEN = 0x20;
export const IN_CLOSE_NOWRITE = 0x10;

export const POLLIN = 0x1;

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  6: "ENXIO",
  9: "EBADF",
  11: "EAGAIN",
  13: "EACCES",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  24: "EMFILE",
  28: "ENOSPC",
  30: "EROFS",
  36: "ENAMETOOLONG",
  39: "ENOTEMPTY",
  40: "ELOOP",
};

/** A failed system call: `code` is the errno name (ENOENT, ELOOP, …). */
export class SysError extends Error {
  constructor(readonly call: string, readonly errno: number, path?: string) {
    const code = ERRNO_NAMES[errno] ?? `errno ${errno}`;
    super(`${call}${path ? ` '${path}'` : ""}: ${code}`);
    this.code = code;
  }
  readonly code: string;
}

const SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  fchmod: { parameters: ["i32", "u32"], result: "i32" },
  fsync: { parameters: ["i32"], result: "i32" },
  madvise: { parameters: ["usize", "usize", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  mkdirat: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  renameat2: { parameters: ["i32", "buffer", "i32", "buffer", "u32"], result: "i32" },
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  inotify_init1: { parameters: ["i32"], result: "i32" },
  inotify_add_watch: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** On a thread of Deno's pool: the event loop goes on while it waits. */
  poll_wait: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let lib: Lib | null = null;
let errnoView: Deno.UnsafePointerView | null = null;

function libc(): Lib {
  if (!lib) {
    lib = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    errnoView = new Deno.UnsafePointerView(lib.__errno_location()!);
  }
  return lib;
}

/** errno of the last failed call on this (the main) thread; read right after the call. */
function errno(): number {
  return errnoView!.getInt32();
}

const encoder = new TextEncoder();
/**
 * A path as the kernel takes it. A name read from a folder is passed as its raw bytes: it need
 * not be UTF-8, and a decoded and re-encoded name would be another name.
 */
export function cstr(s: string | Uint8Array): Uint8Array<ArrayBuffer> {
  const bytes = typeof s === "string" ? encoder.encode(s) : s;
  if (bytes.includes(0)) throw new SysError("path", 22, shown(s));
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

function check(call: string, result: number, path?: string): number {
  if (result < 0) throw new SysError(call, errno(), path);
  return result;
}

/** A name for messages: raw bytes that are not UTF-8 show as U+FFFD. */
export function shown(name: string | Uint8Array): string {
  return typeof name === "string" ? name : decoder.decode(name);
}

export function openat(
  dirfd: number,
  path: string | Uint8Array,
  flags: number,
  mode = 0,
): number {
  const f = libc();
  return check("open", f.openat(dirfd, cstr(path), flags | O_CLOEXEC, mode), shown(path));
}

export function fchmod(fd: number, mode: number): void {
  check("fchmod", libc().fchmod(fd, mode), `fd ${fd}`);
}

export function fsync(fd: number): void {
  check("fsync", libc().fsync(fd), `fd ${fd}`);
}

export const MADV_DONTNEED = 4;

/** madvise(2) on `[start, start + length)`; both page-aligned. */
export function madvise(start: bigint, length: bigint, advice: number): void {
  check("madvise", libc().madvise(start, length, advice));
}

export function close(fd: number): void {
  libc().close(fd);
}

/** Reads into `buf` from the current position; returns the bytes read (0 at the end). */
export function read(fd: number, buf: Uint8Array<ArrayBuffer>, offset = 0): number {
  const f = libc();
  const view = offset === 0 ? buf : buf.subarray(offset);
  return Number(check("read", Number(f.read(fd, view, BigInt(view.length)))));
}

export function write(fd: number, buf: Uint8Array<ArrayBuffer>): number {
  const f = libc();
  return Number(check("write", Number(f.write(fd, buf, BigInt(buf.length)))));
}

export type Kind =
  | "file"
  | "directory"
  | "symlink"
  | "fifo"
  | "socket"
  | "character device"
  | "block device"
  | "other";

export interface Stat {
  kind: Kind;
  /** `major:minor:ino`: the same value for the same file. */
  id: string;
  size: number;
  mode: number;
}

function kindOfMode(mode: number): Kind {
  switch (mode & 0o170000) {
    case 0o100000:
      return "file";
    case 0o040000:
      return "directory";
    case 0o120000:
      return "symlink";
    case 0o010000:
      return "fifo";
    case 0o140000:
      return "socket";
    case 0o020000:
      return "character device";
    case 0o060000:
      return "block device";
    default:
      return "other";
  }
}

const STATX_BASIC_STATS = 0x7ff;
const statxBuf = new Uint8Array(256);
const statxView = new DataView(statxBuf.buffer);
const EMPTY = new Uint8Array(1);

function statxAt(dirfd: number, path: Uint8Array<ArrayBuffer>, flags: number, shown: string): Stat {
  const f = libc();
  check("statx", f.statx(dirfd, path, flags, STATX_BASIC_STATS, statxBuf), shown);
  const mode = statxView.getUint16(28, true);
  const ino = statxView.getBigUint64(32, true);
  const size = statxView.getBigUint64(40, true);
  const major = statxView.getUint32(136, true);
  const minor = statxView.getUint32(140, true);
  return { kind: kindOfMode(mode), id: `${major}:${minor}:${ino}`, size: Number(size), mode };
}

/** fstat: what the handle is. */
export function fstat(fd: number): Stat {
  return statxAt(fd, EMPTY, AT_EMPTY_PATH, `fd ${fd}`);
}

/** lstat relative to a folder handle (AT_FDCWD: to the working folder). */
export function lstatAt(dirfd: number, path: string): Stat {
  return statxAt(dirfd, cstr(path), AT_SYMLINK_NOFOLLOW, path);
}

export function unlinkat(dirfd: number, name: string | Uint8Array, flags: number): void {
  const f = libc();
  check("unlink", f.unlinkat(dirfd, cstr(name), flags), shown(name));
}

export function mkdirat(dirfd: number, name: string | Uint8Array, mode: number): void {
  const f = libc();
  check("mkdir", f.mkdirat(dirfd, cstr(name), mode), shown(name));
}

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;

export function renameat2(
  fromDir: number,
  from: string,
  toDir: number,
  to: string,
  flags: number,
): void {
  const f = libc();
  check("rename", f.renameat2(fromDir, cstr(from), toDir, cstr(to), flags), from);
}

export function rewind(fd: number): void {
  const f = libc();
  check("lseek", Number(f.lseek(fd, 0n, 0)));
}

export interface DirEntry {
  /** For messages only: bytes that are not UTF-8 show as U+FFFD. */
  name: string;
  /** The name as the kernel has it: pass this to the *at calls. */
  raw: Uint8Array<ArrayBuffer>;
  /** From d_type; "other" when the file system does not say. */
  kind: Kind | "unknown";
}

const DT_KINDS: Record<number, Kind | "unknown"> = {
  0: "unknown",
  1: "fifo",
  2: "character device",
  4: "directory",
  6: "block device",
  8: "file",
  10: "symlink",
  12: "socket",
};

const decoder = new TextDecoder();

/** The next batch of entries of a folder handle ("." and ".." left out); empty at the end. */
export function readDirBatch(fd: number, buf: Uint8Array<ArrayBuffer>): DirEntry[] {
  const f = libc();
  const n = Number(check("getdents64", Number(f.getdents64(fd, buf, BigInt(buf.length)))));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: DirEntry[] = [];
  let at = 0;
  while (at < n) {
    const reclen = view.getUint16(at + 16, true);
    const type = view.getUint8(at + 18);
    let end = at + 19;
    while (end < at + reclen && buf[end] !== 0) end++;
    const raw = buf.slice(at + 19, end);
    const name = decoder.decode(raw);
    if (name !== "." && name !== "..") out.push({ name, raw, kind: DT_KINDS[type] ?? "other" });
    at += reclen;
  }
  return out;
}

/** A non-blocking, close-on-exec pipe: [read end, write end]. */
export function pipe(): [number, number] {
  const f = libc();
  const fds = new Int32Array(2);
  check("pipe2", f.pipe2(new Uint8Array(fds.buffer), O_NONBLOCK | O_CLOEXEC));
  return [fds[0], fds[1]];
}

export function inotifyInit(): number {
  return check("inotify_init1", libc().inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
}

export function inotifyAddWatch(fd: number, path: string, mask: number): number {
  return check("inotify_add_watch", libc().inotify_add_watch(fd, cstr(path), mask), path);
}

/**
 * Waits until one of `fds` is readable (POLLIN) on a thread of Deno's pool. Returns the fds
 * that are. Does not throw on EINTR (returns none).
 */
export async function pollReadable(fds: number[]): Promise<number[]> {
  const f = libc();
  const buf = new Uint8Array(8 * fds.length);
  const view = new DataView(buf.buffer);
  fds.forEach((fd, i) => {
    view.setInt32(i * 8, fd, true);
    view.setInt16(i * 8 + 4, POLLIN, true);
  });
  const n = await f.poll_wait(buf, BigInt(fds.length), -1);
  if (n <= 0) return [];
  return fds.filter((_, i) => view.getInt16(i * 8 + 6, true) !== 0);
}

export interface InotifyEvent {
  mask: number;
  name: string;
}

/** Parses what read(2) returned on an inotify handle. */
export function parseInotify(buf: Uint8Array, n: number): InotifyEvent[] {
  const view = new DataView(buf.buffer, buf.byteOffset, n);
  const out: InotifyEvent[] = [];
  let at = 0;
  while (at + 16 <= n) {
    const mask = view.getUint32(at + 4, true);
    const len = view.getUint32(at + 12, true);
    let end = at + 16;
    while (end < at + 16 + len && buf[end] !== 0) end++;
    out.push({ mask, name: decoder.decode(buf.subarray(at + 16, end)) });
    at += 16 + len;
  }
  return out;
}
