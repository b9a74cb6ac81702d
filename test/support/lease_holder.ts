/**
 * Run as a subprocess: creates the file at argv[0] with argv[1] as content and takes a write
 * lease on it (F_SETLEASE F_WRLCK), as a process in the bot's container can on its own trigger.
 * Any other open for reading then fails with EAGAIN (O_NONBLOCK) until the lease is released.
 * Prints "leased" and waits to be killed. SIGIO (the lease-break notice) is ignored.
 */

const F_SETLEASE = 1024;
const F_WRLCK = 1;
const SIGIO = 29;

const libc = Deno.dlopen("libc.so.6", {
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  signal: { parameters: ["i32", "pointer"], result: "pointer" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
}).symbols;

const [path, content] = Deno.args;
libc.signal(SIGIO, Deno.UnsafePointer.create(1n)); // SIG_IGN
const O_WRONLY_CREAT_EXCL = 0o1 | 0o100 | 0o200;
const fd = libc.open(new TextEncoder().encode(`${path}\0`), O_WRONLY_CREAT_EXCL, 0o644);
const bytes = new TextEncoder().encode(content);
if (fd < 0 || Number(libc.write(fd, bytes, BigInt(bytes.length))) !== bytes.length) {
  console.log("cannot create");
  Deno.exit(1);
}
if (libc.fcntl(fd, F_SETLEASE, F_WRLCK) !== 0) {
  console.log("no lease");
  Deno.exit(1);
}
console.log("leased");
setInterval(() => {}, 1000);
