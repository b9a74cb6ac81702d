/**
 * The data-folder module's smaller promises, outside the removal walk (issue 13: mutants
 * StrykerJS left alive in lib/adapters/data_dir.ts): which errors count as "nothing there",
 * that reading and writing give back every handle they open, that a read ends with what a file
 * holds, that a failed atomic write says so and leaves nothing behind, the folder fsync, the
 * removal budget's counting and clock, the listing, the names DataDir accepts, its write mode
 * and its identity. Real files in temp folders; the clock of the budget is a fake.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DataDir,
  entryKind,
  isNotFound,
  readEntry,
  RemovalBudget,
  syncDir,
  writeFileAtomic,
} from "../../lib/adapters/data_dir.ts";
import { SysError } from "../../lib/adapters/libc.ts";
import { countOpens } from "../support/hostile.ts";

async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "hbt-datadir-mut-" });
  return { dir, cleanup: () => Deno.remove(dir, { recursive: true }) };
}

/** How many handles this process holds now. */
function openHandles(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

/**
 * Fails when `runs` calls left a handle open each. Deno itself opens and closes a few handles
 * now and then (a worker that ends, its first async file call), so a few either way are let be.
 */
function assertNoLeak(before: number, runs: number): void {
  const gained = openHandles() - before;
  assert.ok(gained < runs / 2, `${gained} more handles open after ${runs} runs`);
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
}

Deno.test("isNotFound says yes to every not-found error: the kernel's, Deno's (also one made without an errno, as a fake raises it) and a Node-style one", () => {
  assert.equal(isNotFound(new SysError("open", 2, "/x")), true);
  assert.equal(isNotFound(thrown(() => Deno.statSync("/nonexistent-hbt/x"))), true);
  assert.equal(isNotFound(new Deno.errors.NotFound("no such file")), true);
  assert.equal(isNotFound(Object.assign(new Error("gone"), { code: "ENOENT" })), true);
});

Deno.test("isNotFound says no, and never throws, for any other error or a thrown value that is not an error", () => {
  assert.equal(isNotFound(new SysError("open", 20, "/x")), false);
  assert.equal(isNotFound(thrown(() => Deno.mkdirSync("/tmp"))), false);
  assert.equal(isNotFound(new Error("ENOENT")), false);
  assert.equal(isNotFound(null), false);
  assert.equal(isNotFound(undefined), false);
  assert.equal(isNotFound("ENOENT"), false);
});

Deno.test("readEntry and entryKind answer null only when nothing is there; any other failure (a path through a file) is thrown", async () => {
  const t = await tempDir();
  try {
    const file = join(t.dir, "f");
    await Deno.writeTextFile(file, "x");
    assert.equal(readEntry(join(t.dir, "missing"), 10), null);
    assert.equal(entryKind(join(t.dir, "missing")), null);
    assert.throws(() => readEntry(join(file, "x"), 10), /ENOTDIR/);
    assert.throws(() => entryKind(join(file, "x")), /ENOTDIR/);
  } finally {
    await t.cleanup();
  }
});

Deno.test("readEntry gives back every handle it opens, for a file and for anything else", async () => {
  const t = await tempDir();
  try {
    const file = join(t.dir, "f");
    await Deno.writeTextFile(file, "hello");
    const before = openHandles();
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(readEntry(file, 100)?.bytes, new TextEncoder().encode("hello"));
      assert.deepEqual(readEntry(t.dir, 100), { kind: "directory", bytes: null });
    }
    assertNoLeak(before, 20);
  } finally {
    await t.cleanup();
  }
});

Deno.test("writeFileAtomic gives back the handle of the file it writes", async () => {
  const t = await tempDir();
  try {
    await writeFileAtomic(join(t.dir, "f"), "first"); // Deno's first async file call opens its own
    const before = openHandles();
    for (let i = 0; i < 20; i++) await writeFileAtomic(join(t.dir, "f"), `v${i}`);
    assertNoLeak(before, 20);
    assert.equal(await Deno.readTextFile(join(t.dir, "f")), "v19");
  } finally {
    await t.cleanup();
  }
});

Deno.test("writeFileAtomic over a name it cannot replace (a folder with entries) fails, and leaves no temporary file behind", async () => {
  const t = await tempDir();
  try {
    const target = join(t.dir, "target");
    await Deno.mkdir(target);
    await Deno.writeTextFile(join(target, "inside"), "x");
    await assert.rejects(writeFileAtomic(target, "new"));
    assert.deepEqual([...Deno.readDirSync(t.dir)].map((e) => e.name), ["target"]);
  } finally {
    await t.cleanup();
  }
});

Deno.test("syncing the folder (DataDir.sync, syncDir) opens the folder itself and closes it again", async () => {
  const t = await tempDir();
  try {
    await syncDir(t.dir); // Deno's first async file call opens handles of its own
    const opens = countOpens(t.dir);
    try {
      const before = openHandles();
      // Read after each: the kernel folds an open into the last one while that is unread.
      for (let i = 1; i <= 10; i++) {
        await new DataDir(t.dir).sync();
        assert.equal(opens.count(), i);
      }
      for (let i = 11; i <= 20; i++) {
        await syncDir(t.dir);
        assert.equal(opens.count(), i);
      }
      assertNoLeak(before, 20);
    } finally {
      opens.close();
    }
  } finally {
    await t.cleanup();
  }
});

Deno.test("a removal budget allows exactly maxOps system calls; spent turns true only past them", () => {
  const budget = new RemovalBudget(3, 1_000, () => 0);
  for (let i = 0; i < 3; i++) assert.equal(budget.take(), true);
  assert.equal(budget.spent, false);
  assert.equal(budget.take(), false);
  assert.equal(budget.spent, true);
  assert.equal(budget.used, 4);
});

Deno.test("take() reads the clock only on every 64th call, and that call refuses once the deadline is reached", () => {
  let now = 0;
  const budget = new RemovalBudget(1_000_000, 10, () => now);
  now = 10;
  for (let i = 1; i < 64; i++) assert.equal(budget.take(), true, `call ${i}`);
  assert.equal(budget.take(), false);
});

Deno.test("a removal budget is spent once its deadline is reached, however few calls it counted", () => {
  let now = 0;
  const budget = new RemovalBudget(1_000_000, 10, () => now);
  now = 9;
  assert.equal(budget.spent, false);
  now = 10;
  assert.equal(budget.spent, true);
});

Deno.test("DataDir.list returns only the names with the prefix, at most max, and nothing from an empty folder", async () => {
  const t = await tempDir();
  try {
    const data = new DataDir(t.dir);
    assert.deepEqual(await data.list("", 10), []);
    for (const n of ["a1", "a2", "a3", "b1"]) await Deno.writeTextFile(join(t.dir, n), "");
    assert.deepEqual((await data.list("a", 10)).sort(), ["a1", "a2", "a3"]);
    const two = await data.list("a", 2);
    assert.equal(two.length, 2);
    assert.ok(two.every((n) => n.startsWith("a")), two.join());
  } finally {
    await t.cleanup();
  }
});

Deno.test("DataDir refuses every name that is not one entry directly in it: empty, '.', '..', or one with a '/'", async () => {
  const t = await tempDir();
  try {
    await Deno.mkdir(join(t.dir, "sub"));
    await Deno.writeTextFile(join(t.dir, "sub", "f"), "x");
    const data = new DataDir(t.dir);
    for (const name of ["", ".", "..", "sub/f", "/"]) {
      const refused = new RegExp(`: not a name in the data folder: ${RegExp.escape(name)}$`);
      await assert.rejects(data.read(name, 10), refused, `read ${JSON.stringify(name)}`);
      await assert.rejects(data.kindOf(name), refused, `kindOf ${JSON.stringify(name)}`);
    }
    assert.equal((await data.read("sub", 10))?.kind, "directory");
  } finally {
    await t.cleanup();
  }
});

Deno.test("DataDir.write gives the file the mode asked for", async () => {
  const t = await tempDir();
  try {
    await new DataDir(t.dir).write("f", "x", 0o604);
    assert.equal(Deno.statSync(join(t.dir, "f")).mode! & 0o777, 0o604);
  } finally {
    await t.cleanup();
  }
});

Deno.test("DataDir.remove says why it left an entry it could not remove (the kernel's error)", async () => {
  const t = await tempDir();
  try {
    const removal = await new DataDir(t.dir).remove("n".repeat(300));
    assert.equal(removal.removed, false);
    assert.match(removal.reason ?? "", /ENAMETOOLONG/);
  } finally {
    await t.cleanup();
  }
});

Deno.test("DataDir.identity is the folder's dev:ino, and null when it is gone or not a folder", async () => {
  const t = await tempDir();
  try {
    const info = Deno.statSync(t.dir);
    assert.equal(await new DataDir(t.dir).identity(), `${info.dev}:${info.ino}`);
    await Deno.writeTextFile(join(t.dir, "f"), "");
    assert.equal(await new DataDir(join(t.dir, "f")).identity(), null);
    assert.equal(await new DataDir(join(t.dir, "missing")).identity(), null);
  } finally {
    await t.cleanup();
  }
});

Deno.test("readEntry returns exactly the bytes a regular file holds when it holds fewer than its size says (a sysfs file), and ends", async () => {
  // /sys/devices/system/cpu/online says 4096 bytes and holds a few: a file that shrank while
  // it was read looks the same. Read in a worker, so a read that never ends fails the test.
  const path = "/sys/devices/system/cpu/online";
  const expected = Deno.readFileSync(path);
  assert.ok(Deno.statSync(path).size > expected.length, "the sysfs file no longer says more");
  const module = new URL("../../lib/adapters/data_dir.ts", import.meta.url).href;
  const code = `import { readEntry } from ${JSON.stringify(module)};
    self.onmessage = (e) => self.postMessage(readEntry(e.data, 4096));`;
  const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const got = await Promise.race([
      new Promise((resolve) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.postMessage(path);
      }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("readEntry did not end")), 5_000);
      }),
    ]);
    assert.deepEqual(got, { kind: "file", bytes: expected });
  } finally {
    clearTimeout(timer);
    worker.terminate();
    URL.revokeObjectURL(url);
  }
});
