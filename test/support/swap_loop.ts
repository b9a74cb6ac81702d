/**
 * The swap loop of test/support/hostile.ts, run as its own process: exchanges two names with
 * renameat2(RENAME_EXCHANGE) as fast as it can, re-linking the device node at the decoy name
 * whenever a rename over the name removed it, until stdin closes. Prints the swaps made.
 *
 *   deno run --allow-ffi --allow-read --allow-write swap_loop.ts <name> <decoy> <device>
 */

const [name, decoy, device] = Deno.args;
const libc = Deno.dlopen("libc.so.6", {
  renameat2: { parameters: ["i32", "buffer", "i32", "buffer", "u32"], result: "i32" },
});
const RENAME_EXCHANGE = 2;
const cstr = (s: string) => new TextEncoder().encode(s + "\0");
const a = cstr(name);
const b = cstr(decoy);
const deviceIno = Deno.statSync(device).ino;

let stopped = false;
(async () => {
  for await (const _ of Deno.stdin.readable) { /* until closed */ }
  stopped = true;
})();

function holdsDevice(path: string): boolean {
  try {
    return Deno.lstatSync(path).ino === deviceIno;
  } catch {
    return false;
  }
}

let swaps = 0;
while (!stopped) {
  for (let i = 0; i < 200; i++) {
    if (!holdsDevice(name) && !holdsDevice(decoy)) {
      try {
        Deno.removeSync(decoy);
      } catch { /* absent */ }
      try {
        Deno.linkSync(device, decoy);
      } catch { /* raced */ }
    }
    if (libc.symbols.renameat2(-100, a, -100, b, RENAME_EXCHANGE) === 0) swaps++;
  }
  await new Promise((r) => setTimeout(r, 0));
}
console.log(swaps);
