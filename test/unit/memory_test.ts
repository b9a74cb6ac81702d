import assert from "node:assert/strict";
import { isDroppable, parseSmaps, releaseCodePages } from "../../lib/adapters/memory.ts";

const SMAPS = `55d0c0000000-55d0c0a00000 r--p 00000000 08:01 123 /usr/bin/deno
Rss:                8192 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0c0a00000-55d0c2000000 r-xp 00a00000 08:01 123 /usr/bin/deno
Rss:               20480 kB
Shared_Dirty:          0 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0c2000000-55d0c2100000 r--p 02000000 08:01 123 /usr/bin/deno
Rss:                1024 kB
Private_Dirty:       512 kB
Anonymous:           512 kB
55d0c2100000-55d0c2200000 rw-p 02100000 08:01 123 /usr/bin/deno
Rss:                1024 kB
Private_Dirty:      1024 kB
Anonymous:          1024 kB
7f0000000000-7f0000100000 r--s 00000000 08:01 456 /root/.cache/deno/v8_code_cache_v2
Rss:                1024 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000080000-7f0000090000 rw-s 00000000 08:01 457 /root/.cache/deno/v8_code_cache_v2-shm
Rss:                  64 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000100000-7f0000200000 rw-p 00000000 00:00 0
Rss:                1024 kB
Private_Dirty:      1024 kB
Anonymous:          1024 kB
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   4 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
`;

Deno.test("only clean, read-only file mappings are dropped: never data, a relocated table, a writable map or the heap", () => {
  const maps = parseSmaps(SMAPS);
  assert.equal(maps.length, 8);
  assert.deepEqual(
    maps.map((m) => [m.perms, m.path, isDroppable(m)]),
    [
      ["r--p", "/usr/bin/deno", true],
      ["r-xp", "/usr/bin/deno", true],
      ["r--p", "/usr/bin/deno", false], // relocated (dirty) read-only data
      ["rw-p", "/usr/bin/deno", false],
      ["r--s", "/root/.cache/deno/v8_code_cache_v2", true], // read-only, clean: the file has it
      ["rw-s", "/root/.cache/deno/v8_code_cache_v2-shm", false],
      ["rw-p", "", false],
      ["r-xp", "[vdso]", false],
    ],
  );
  assert.equal(maps[1].start, 0x55d0c0a00000n);
  assert.equal(maps[1].rssKiB, 20480);
});

Deno.test("after its code pages are dropped the process goes on working, with less resident", () => {
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))![1]);
  const before = rss();
  const released = releaseCodePages();
  const after = rss();
  assert.ok(released > 1024, `released ${released} KiB`);
  assert.ok(after < before, `RSS ${before} -> ${after} KiB`);
  // Code the drop paged out runs again from the page cache.
  assert.deepEqual(JSON.parse(JSON.stringify({ a: [1, "x"] })), { a: [1, "x"] });
  assert.match(new Date(0).toISOString(), /^1970-01-01T/);
  assert.equal(new TextDecoder().decode(new TextEncoder().encode("ü")), "ü");
});
