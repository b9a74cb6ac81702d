/**
 * The removal walk climbs back through ".." (lib/adapters/data_dir.ts). A folder the container
 * moves while the walk is inside it must end the walk: otherwise ".." leads out of dataDir and
 * the root-owned walk empties the host's folders above it.
 *
 * Safety: the walk runs under a chain of sentinel folders deeper than the moved part, with a
 * small budget, so even a broken walk stays inside the temp folder this test made.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { RemovalBudget, removeEntry } from "../../lib/adapters/data_dir.ts";
import {
  AT_FDCWD,
  close,
  mkdirat,
  O_CREAT_EXCL_WRONLY,
  O_DIRECTORY,
  O_RDONLY,
  openat,
} from "../../lib/adapters/libc.ts";
import { FileTriggerInbox } from "../../lib/adapters/trigger_inbox.ts";
import { makeDeepFolder } from "../support/hostile.ts";

const SENTINEL_LEVELS = 150;
const CHAIN = 600;
const MOVED_AT = 100;

Deno.test("a folder moved to the top of dataDir while the walk is below it ends the walk, and nothing beside or above dataDir is removed", async () => {
  const base = await Deno.makeTempDir({ prefix: "hbt-walk-" });
  try {
    // base/outer/s/s/…/s/dataDir, a sentinel file in each folder on the way.
    const levels: string[] = [join(base, "outer")];
    for (let i = 1; i < SENTINEL_LEVELS; i++) levels.push(join(levels[i - 1], "s"));
    await Deno.mkdir(levels[levels.length - 1], { recursive: true });
    for (const level of levels) await Deno.writeTextFile(join(level, "sentinel"), "keep");
    const dataDir = join(levels[levels.length - 1], "data");
    await Deno.mkdir(dataDir);
    await Deno.writeTextFile(join(dataDir, "bot.sqlite"), "keep");
    makeDeepFolder(join(dataDir, "t"), CHAIN);

    const budget = new RemovalBudget(20_000, 60_000);
    const walk = removeEntry(dataDir, "t", budget);
    // The walk is now at its first yield, deeper than MOVED_AT: move that folder away.
    Deno.renameSync(join(dataDir, "t", ...Array(MOVED_AT - 1).fill("d")), join(dataDir, "moved"));
    const result = await walk;

    assert.equal(result.removed, false);
    assert.match(result.reason ?? "", /moved/);
    assert.equal(await Deno.readTextFile(join(dataDir, "bot.sqlite")), "keep");
    assert.ok((await Deno.lstat(join(dataDir, "moved"))).isDirectory);
    for (const level of levels) {
      assert.equal(await Deno.readTextFile(join(level, "sentinel")), "keep", level);
    }
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("a trigger folder holding names that are not UTF-8 is removed at the claim, in a few system calls", async () => {
  const base = await Deno.makeTempDir({ prefix: "hbt-walk-" });
  try {
    const dataDir = join(base, "data");
    const stateDir = join(base, "state");
    await Deno.mkdir(join(dataDir, ".update_trigger"), { recursive: true });
    await Deno.mkdir(stateDir);
    const trigger = openat(AT_FDCWD, join(dataDir, ".update_trigger"), O_RDONLY | O_DIRECTORY);
    try {
      // 0xff and 0xfe never occur in UTF-8: decoded they become U+FFFD, another name.
      close(openat(trigger, new Uint8Array([0xff, 0xfe]), O_CREAT_EXCL_WRONLY, 0o644));
      mkdirat(trigger, new Uint8Array([0x61, 0xff]), 0o755);
      const sub = openat(trigger, new Uint8Array([0x61, 0xff]), O_RDONLY | O_DIRECTORY);
      close(openat(sub, new Uint8Array([0xc3, 0x28]), O_CREAT_EXCL_WRONLY, 0o644));
      close(sub);
    } finally {
      close(trigger);
    }
    const left: string[] = [];
    const inbox = new FileTriggerInbox(
      dataDir,
      stateDir,
      Date.now,
      (p, why) => left.push(`${p}: ${why}`),
    );
    const claim = await inbox.claim();
    assert.equal(claim?.content.kind, "directory");
    assert.deepEqual(left, []);
    assert.deepEqual([...Deno.readDirSync(dataDir)], []);

    // The walk itself: a handful of calls, not a budget spent retrying an altered name.
    await Deno.mkdir(join(dataDir, "t"));
    const t = openat(AT_FDCWD, join(dataDir, "t"), O_RDONLY | O_DIRECTORY);
    close(openat(t, new Uint8Array([0xff]), O_CREAT_EXCL_WRONLY, 0o644));
    close(t);
    const budget = new RemovalBudget(20_000, 60_000);
    assert.deepEqual(await removeEntry(dataDir, "t", budget), { removed: true });
    assert.ok(budget.used < 20, `${budget.used} system calls`);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
