/**
 * How hyperbot-ops is run from source: the same permissions and V8 flags `deno task compile`
 * bakes into the executable. main.ts (the command install writes into the unit), the tests and
 * the benchmarks use this one list.
 *
 * The V8 flags are for the watcher, which spends its life idle and wakes every 30 s:
 * - `--single-threaded`: V8's background GC and compiler threads wake an idle process several
 *   times a second (a bare deno process here: 75 ms CPU a minute with them, 12 without);
 * - `--no-flush-bytecode`: V8 drops the bytecode of functions unused for a while, so every
 *   30 s wake-up compiled the same code again (the watcher: 55 ms a minute, 18 without).
 * - `--max-semi-space-size=1`: V8's young generation in 1 MiB halves (it grows to 8 MiB and
 *   more by default); the watcher allocates little, so a larger nursery only stays resident.
 * An ops tool that waits on Docker gains nothing from any of them. The rest of the idle memory
 * is the runtime's code (lib/adapters/memory.ts drops what start-up ran once); see the README's
 * benchmark section for the breakdown.
 *
 * `--allow-ffi`: lib/adapters/libc.ts (O_PATH opens in the data folder, inotify).
 */
export const RUN_FLAGS: readonly string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-net",
  "--allow-run",
  "--allow-sys",
  "--allow-ffi",
  "--v8-flags=--single-threaded,--no-flush-bytecode,--max-semi-space-size=1",
];
