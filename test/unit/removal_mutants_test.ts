/**
 * The bounded, link-safe removal (removeEntry in lib/adapters/data_dir.ts) at each step where
 * the container can make it fail: an entry gone, swapped for a link, a file or a folder, a
 * folder filled again, an entry even root may not remove (chattr +i), handles running out,
 * and a budget spent. Each promise: the entry is removed when it can be, and otherwise left
 * with the reason the operator is shown, without leaking a handle or touching what a link
 * points to.
 *
 * The races are made deterministic: `Interleaved` is a real RemovalBudget that, when the walk
 * counts its n-th system call (take() is called right before the call it counts), runs the
 * move planned for n, synchronously, before the walk makes that call. The counts are those
 * of the small trees each test builds; each test asserts its move was made. Two windows have no
 * budget call inside (a failed call, then the open that follows it): there `atNextFailure`
 * makes the move while the walk classifies the failed call's error.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { RemovalBudget, removeEntry } from "../../lib/adapters/data_dir.ts";
import { AT_FDCWD, close, O_RDONLY, openat, SysError } from "../../lib/adapters/libc.ts";
import { makeDeepFolder } from "../support/hostile.ts";

/** A RemovalBudget that makes a planned move right before the walk's n-th system call. */
class Interleaved extends RemovalBudget {
  readonly made: number[] = [];
  constructor(private readonly moves: Record<number, () => void>, maxOps = 1_000) {
    super(maxOps, 60_000);
  }
  override take(): boolean {
    const ok = super.take();
    const move = this.moves[this.used];
    if (move) {
      move();
      this.made.push(this.used);
    }
    return ok;
  }
}

const rlimit = Deno.dlopen("libc.so.6", {
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
}).symbols;
const RLIMIT_NOFILE = 7;

/**
 * Lowers this process's handle limit so the next open fails with EMFILE (every handle number
 * below the limit is taken); the returned function puts the limit back (idempotent).
 */
function starveHandles(): () => void {
  const saved = new BigUint64Array(2);
  assert.equal(rlimit.getrlimit(RLIMIT_NOFILE, saved), 0);
  const lowestFree = openat(AT_FDCWD, "/dev/null", O_RDONLY);
  close(lowestFree);
  assert.equal(
    rlimit.setrlimit(RLIMIT_NOFILE, new BigUint64Array([BigInt(lowestFree), saved[1]])),
    0,
  );
  let restored = false;
  return () => {
    if (!restored) rlimit.setrlimit(RLIMIT_NOFILE, saved);
    restored = true;
  };
}

function chattr(flag: "+i" | "-i", path: string): void {
  const out = new Deno.Command("chattr", { args: [flag, path] }).outputSync();
  if (!out.success) {
    throw new Error(`chattr ${flag} ${path} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

function openHandles(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

async function inTemp(fn: (base: string) => Promise<void>): Promise<void> {
  const base = await Deno.makeTempDir({ prefix: "hbt-rm-" });
  try {
    await fn(base);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
}

const TOO_MANY = "too many entries to remove in time";

// --- the entry itself ----------------------------------------------------------------------

Deno.test("removing a name that is not there says it is removed", async () => {
  await inTemp(async (base) => {
    assert.deepEqual(await removeEntry(base, "nothing-here"), { removed: true });
  });
});

Deno.test("a file even root may not unlink is left, and the reason names the refusal (EPERM)", async () => {
  await inTemp(async (base) => {
    const file = join(base, "stuck");
    Deno.writeTextFileSync(file, "keep");
    chattr("+i", file);
    try {
      const result = await removeEntry(base, "stuck");
      assert.equal(result.removed, false);
      assert.match(result.reason ?? "", /unlink .*EPERM/);
      assert.equal(Deno.readTextFileSync(file), "keep");
    } finally {
      chattr("-i", file);
    }
  });
});

Deno.test("a folder that cannot be opened (no handle left) is left, and the reason says why (EMFILE)", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t"));
    const restore = starveHandles();
    let walk: Promise<unknown>;
    try {
      // Synchronous up to its first await: all of this removal runs before the limit is back.
      walk = removeEntry(base, "t");
    } finally {
      restore();
    }
    const result = await walk;
    assert.deepEqual(result, { removed: false, reason: `open '${join(base, "t")}': EMFILE` });
    assert.ok(Deno.lstatSync(join(base, "t")).isDirectory);
  });
});

Deno.test("a folder with a subfolder holding files is removed whole", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t", "a", "b"), { recursive: true });
    Deno.writeTextFileSync(join(base, "t", "a", "f"), "x");
    Deno.writeTextFileSync(join(base, "t", "a", "b", "g"), "x");
    assert.deepEqual(await removeEntry(base, "t"), { removed: true });
    assert.equal(exists(join(base, "t")), false);
  });
});

// --- inside the folder: files ----------------------------------------------------------------

Deno.test("a file in the folder that even root may not unlink leaves the folder, and the reason names the refusal", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t"));
    const file = join(base, "t", "stuck");
    Deno.writeTextFileSync(file, "keep");
    chattr("+i", file);
    try {
      const result = await removeEntry(base, "t", new RemovalBudget(300, 60_000));
      assert.equal(result.removed, false);
      assert.match(result.reason ?? "", /unlink 'stuck': EPERM/);
      assert.equal(Deno.readTextFileSync(file), "keep");
    } finally {
      chattr("-i", file);
    }
  });
});

// Tree t/f. Calls: 1 unlink t, 2 rewind t, 3 read t, 4 unlink f.
Deno.test("a file in the folder that vanishes right before it is unlinked is no failure: the folder is removed", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t"));
    Deno.writeTextFileSync(join(base, "t", "f"), "x");
    const budget = new Interleaved({ 4: () => Deno.removeSync(join(base, "t", "f")) });
    assert.deepEqual(await removeEntry(base, "t", budget), { removed: true });
    assert.deepEqual(budget.made, [4]);
    assert.equal(exists(join(base, "t")), false);
  });
});

Deno.test("a file in the folder swapped for a filled folder right before it is unlinked is walked into and removed", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t"));
    Deno.writeTextFileSync(join(base, "t", "f"), "x");
    const budget = new Interleaved({
      4: () => {
        Deno.removeSync(join(base, "t", "f"));
        Deno.mkdirSync(join(base, "t", "f"));
        Deno.writeTextFileSync(join(base, "t", "f", "g"), "x");
      },
    });
    assert.deepEqual(await removeEntry(base, "t", budget), { removed: true });
    assert.deepEqual(budget.made, [4]);
    assert.equal(exists(join(base, "t")), false);
  });
});

// --- inside the folder: subfolders -----------------------------------------------------------

// Tree t/sub. Calls: 1 unlink t, 2 rewind t, 3 read t, 4 open sub, 5 rewind sub, 6 read sub,
// 7 open sub/.., 8 rmdir sub, …
Deno.test("a subfolder that vanishes right before the walk opens it is no failure: the folder is removed", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t", "sub"), { recursive: true });
    const budget = new Interleaved({ 4: () => Deno.removeSync(join(base, "t", "sub")) });
    assert.deepEqual(await removeEntry(base, "t", budget), { removed: true });
    assert.deepEqual(budget.made, [4]);
    assert.equal(exists(join(base, "t")), false);
  });
});

Deno.test("a subfolder swapped for a link right before the walk opens it: the link is removed, never followed", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t", "sub"), { recursive: true });
    Deno.mkdirSync(join(base, "outside"));
    Deno.writeTextFileSync(join(base, "outside", "keep"), "keep");
    const budget = new Interleaved({
      4: () => {
        Deno.removeSync(join(base, "t", "sub"));
        Deno.symlinkSync(join(base, "outside"), join(base, "t", "sub"));
      },
    });
    assert.deepEqual(await removeEntry(base, "t", budget), { removed: true });
    assert.deepEqual(budget.made, [4]);
    assert.equal(exists(join(base, "t")), false);
    assert.equal(Deno.readTextFileSync(join(base, "outside", "keep")), "keep");
  });
});

Deno.test("a subfolder swapped for a file right before the walk opens it: the file is removed, then the folder", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t", "sub"), { recursive: true });
    const budget = new Interleaved({
      4: () => {
        Deno.removeSync(join(base, "t", "sub"));
        Deno.writeTextFileSync(join(base, "t", "sub"), "x");
      },
    });
    assert.deepEqual(await removeEntry(base, "t", budget), { removed: true });
    assert.deepEqual(budget.made, [4]);
    assert.equal(exists(join(base, "t")), false);
  });
});

Deno.test("a subfolder the walk cannot open (no handle left) leaves the folder, and the reason says why", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t", "sub"), { recursive: true });
    let restore = () => {};
    const budget = new Interleaved({ 4: () => restore = starveHandles(), 5: () => restore() });
    try {
      const result = await removeEntry(base, "t", budget);
      assert.deepEqual(result, { removed: false, reason: "open 'sub': EMFILE" });
    } finally {
      restore();
    }
    assert.deepEqual(budget.made, [4]);
    assert.ok(Deno.lstatSync(join(base, "t", "sub")).isDirectory);
  });
});

Deno.test("climbing out of a subfolder with no handle left ends the walk, and the reason says why", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t", "sub"), { recursive: true });
    let restore = () => {};
    const budget = new Interleaved({ 7: () => restore = starveHandles(), 8: () => restore() });
    try {
      const result = await removeEntry(base, "t", budget);
      assert.deepEqual(result, { removed: false, reason: "open '..': EMFILE" });
    } finally {
      restore();
    }
    assert.deepEqual(budget.made, [7]);
    assert.ok(Deno.lstatSync(join(base, "t", "sub")).isDirectory);
  });
});

// --- the folder itself, once empty -----------------------------------------------------------

// Tree t (empty). Calls: 1 unlink t, 2 rewind t, 3 read t, 4 rmdir t, …
Deno.test("the folder vanishing right before its own rmdir is no failure: it is removed", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t"));
    const budget = new Interleaved({ 4: () => Deno.removeSync(join(base, "t")) });
    assert.deepEqual(await removeEntry(base, "t", budget), { removed: true });
    assert.deepEqual(budget.made, [4]);
  });
});

Deno.test("the folder filled again right before its own rmdir is walked again and removed", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t"));
    const budget = new Interleaved({
      4: () => {
        Deno.mkdirSync(join(base, "t", "again"));
        Deno.writeTextFileSync(join(base, "t", "again", "f"), "x");
      },
    });
    assert.deepEqual(await removeEntry(base, "t", budget), { removed: true });
    assert.deepEqual(budget.made, [4]);
    assert.equal(exists(join(base, "t")), false);
  });
});

Deno.test("the folder swapped for a file right before its own rmdir is left, and the reason says why", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t"));
    const budget = new Interleaved({
      4: () => {
        Deno.removeSync(join(base, "t"));
        Deno.writeTextFileSync(join(base, "t"), "keep");
      },
    });
    const result = await removeEntry(base, "t", budget);
    assert.deepEqual(result, { removed: false, reason: `unlink '${join(base, "t")}': ENOTDIR` });
    assert.deepEqual(budget.made, [4]);
    assert.equal(Deno.readTextFileSync(join(base, "t")), "keep");
  });
});

Deno.test("the folder filled again right before its rmdir, with no handle left to walk it again, is left with the reason", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t"));
    let restore = () => {};
    const budget = new Interleaved({
      4: () => {
        Deno.writeTextFileSync(join(base, "t", "again"), "x");
        restore = starveHandles();
      },
      5: () => restore(),
    });
    try {
      const result = await removeEntry(base, "t", budget);
      assert.deepEqual(result, { removed: false, reason: `open '${join(base, "t")}': EMFILE` });
    } finally {
      restore();
    }
    assert.deepEqual(budget.made, [4]);
    assert.ok(exists(join(base, "t", "again")));
  });
});

Deno.test("a folder made unremovable right before its own rmdir is left at once, with the refusal as the reason", async () => {
  await inTemp(async (base) => {
    const t = join(base, "t");
    Deno.mkdirSync(t);
    const budget = new Interleaved({ 4: () => chattr("+i", t) }, 300);
    try {
      const result = await removeEntry(base, "t", budget);
      assert.deepEqual(result, { removed: false, reason: `unlink '${t}': EPERM` });
      assert.deepEqual(budget.made, [4]);
      assert.equal(budget.used, 4, "not walked again: rmdir refused it for good");
      assert.ok(Deno.lstatSync(t).isDirectory);
    } finally {
      chattr("-i", t);
    }
  });
});

// --- the budget ------------------------------------------------------------------------------

Deno.test("a removal whose time is up leaves the folder as it is, with the reason, and keeps no handle", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t"));
    Deno.writeTextFileSync(join(base, "t", "f"), "x");
    let now = 0;
    const budget = new RemovalBudget(1_000, 10, () => now);
    now = 11; // the deadline passes once the walk has begun
    const before = openHandles();
    const result = await removeEntry(base, "t", budget);
    assert.deepEqual(result, { removed: false, reason: TOO_MANY });
    assert.equal(Deno.readTextFileSync(join(base, "t", "f")), "x");
    assert.equal(openHandles(), before);
  });
});

// Calls: 1 unlink t, 2 rewind t, 3 read t (refused at 2 calls).
Deno.test("a budget spent before the folder is even read leaves it, with the reason", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t"));
    const result = await removeEntry(base, "t", new RemovalBudget(2, 60_000));
    assert.deepEqual(result, { removed: false, reason: TOO_MANY });
    assert.ok(Deno.lstatSync(join(base, "t")).isDirectory);
  });
});

// Calls: 1 unlink t, 2 rewind t, 3 read t, 4 unlink f (refused at 3 calls).
Deno.test("a budget spent before a file is unlinked stops the walk there: the file is left, with the reason", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t"));
    Deno.writeTextFileSync(join(base, "t", "f"), "x");
    const budget = new RemovalBudget(3, 60_000);
    const result = await removeEntry(base, "t", budget);
    assert.deepEqual(result, { removed: false, reason: TOO_MANY });
    assert.equal(Deno.readTextFileSync(join(base, "t", "f")), "x");
    assert.equal(budget.used, 4, "no system call after the one the budget refused");
  });
});

Deno.test("a removal left unfinished keeps no folder handle open", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t", "sub"), { recursive: true });
    Deno.writeTextFileSync(join(base, "t", "sub", "f"), "x");
    const before = openHandles();
    const result = await removeEntry(base, "t", new RemovalBudget(4, 60_000));
    assert.deepEqual(result, { removed: false, reason: TOO_MANY });
    assert.equal(openHandles(), before);
  });
});

Deno.test("a removal left unfinished closes its folder handle even when that is handle 0 (stdin closed)", async () => {
  await inTemp(async (base) => {
    Deno.mkdirSync(join(base, "t"));
    Deno.writeTextFileSync(join(base, "t", "f"), "x");
    close(0); // as a daemon started with stdin closed: the walk's first handle is 0
    let result;
    try {
      result = await removeEntry(base, "t", new RemovalBudget(3, 60_000));
    } finally {
      const stillOpen = exists("/proc/self/fd/0");
      if (!stillOpen) assert.equal(openat(AT_FDCWD, "/dev/null", O_RDONLY), 0);
      assert.equal(stillOpen, false, "handle 0 left open");
    }
    assert.deepEqual(result, { removed: false, reason: TOO_MANY });
  });
});

Deno.test("a long walk hands the event loop a turn within its first 512 counted system calls", async () => {
  await inTemp(async (base) => {
    // 161 levels: the walk's 513th call comes at the top of its loop, where it may yield.
    makeDeepFolder(join(base, "t"), 161);
    const budget = new RemovalBudget(100_000, 60_000);
    const walk = removeEntry(base, "t", budget);
    // removeEntry runs synchronously up to its first turn to the event loop.
    const atFirstTurn = budget.used;
    assert.deepEqual(await walk, { removed: true });
    assert.ok(atFirstTurn <= 1 + 512, `first turn after ${atFirstTurn} calls`);
  });
});

// --- two adjacent calls with no budget call between -----------------------------------------

/**
 * Makes `move` once, the next time code asks whether an error is a SysError: the walk asks it
 * right after a failed system call, before it makes the next, and no other code of the walk
 * runs in between. This is the one point where a test can stand inside such a window; a real
 * race thread hit it in only a few percent of attempts on a busy machine.
 */
function atNextFailure(move: () => void): { made(): boolean; disarm(): void } {
  let made = false;
  const disarm = () => {
    delete (SysError as unknown as Record<symbol, unknown>)[Symbol.hasInstance];
  };
  Object.defineProperty(SysError, Symbol.hasInstance, {
    configurable: true,
    value: (value: unknown) => {
      disarm();
      move();
      made = true;
      return value instanceof SysError;
    },
  });
  return { made: () => made, disarm };
}

// Calls: 1 unlink t (EISDIR); then, with no call counted between, open t (ENOTDIR); 2 unlink t.
Deno.test("a folder swapped for a file between its unlink (EISDIR) and its open is removed as the file it now is", async () => {
  await inTemp(async (base) => {
    const t = join(base, "t");
    Deno.mkdirSync(t);
    let window = { made: () => false, disarm: () => {} };
    const budget = new Interleaved({
      1: () =>
        window = atNextFailure(() => {
          Deno.removeSync(t);
          Deno.writeTextFileSync(t, "swapped in");
        }),
    });
    try {
      assert.deepEqual(await removeEntry(base, "t", budget), { removed: true });
    } finally {
      window.disarm();
    }
    assert.ok(window.made());
    assert.deepEqual([...Deno.readDirSync(base)], [], "the file that took its place is gone");
  });
});

// Calls: 1 unlink t (EISDIR); open t (ENOTDIR: a file now, one even root may not unlink); 2 unlink t.
Deno.test("a folder swapped for a file root may not remove, between its unlink and its open, is left with the refusal", async () => {
  await inTemp(async (base) => {
    const t = join(base, "t");
    Deno.mkdirSync(t);
    let window = { made: () => false, disarm: () => {} };
    const budget = new Interleaved({
      1: () =>
        window = atNextFailure(() => {
          Deno.removeSync(t);
          Deno.writeTextFileSync(t, "swapped in");
          chattr("+i", t);
        }),
    });
    try {
      const removal = await removeEntry(base, "t", budget);
      assert.equal(removal.removed, false);
      assert.match(removal.reason ?? "", /EPERM/);
    } finally {
      window.disarm();
      if (window.made()) chattr("-i", t);
    }
    assert.ok(window.made());
    assert.equal(Deno.readTextFileSync(t), "swapped in");
  });
});

// Calls: 1 unlink t (EISDIR); open t (ENOTDIR: a file now); 2 (the file goes) unlink t (ENOENT).
Deno.test("a folder swapped for a file that is gone again before the second unlink counts as removed", async () => {
  await inTemp(async (base) => {
    const t = join(base, "t");
    Deno.mkdirSync(t);
    let window = { made: () => false, disarm: () => {} };
    const budget = new Interleaved({
      1: () =>
        window = atNextFailure(() => {
          Deno.removeSync(t);
          Deno.writeTextFileSync(t, "swapped in");
        }),
      2: () => Deno.removeSync(t),
    });
    try {
      assert.deepEqual(await removeEntry(base, "t", budget), { removed: true });
    } finally {
      window.disarm();
    }
    assert.ok(window.made());
    assert.deepEqual(budget.made, [1, 2], "the file went right before the second unlink");
  });
});

// Calls: 1 unlink t (EISDIR); then, with no call counted between, open t.
Deno.test("a folder moved away between its unlink (EISDIR) and its open counts as removed", async () => {
  await inTemp(async (base) => {
    const t = join(base, "t");
    Deno.mkdirSync(t);
    let window = { made: () => false, disarm: () => {} };
    const budget = new Interleaved({
      1: () => window = atNextFailure(() => Deno.renameSync(t, join(base, "away"))),
    });
    try {
      assert.deepEqual(await removeEntry(base, "t", budget), { removed: true });
    } finally {
      window.disarm();
    }
    assert.ok(window.made());
    assert.equal(budget.used, 1, "the walk never began: nothing was there to open");
    assert.ok(Deno.lstatSync(join(base, "away")).isDirectory);
  });
});

// Calls: 1 unlink t, 2 rewind t, 3 read t, 4 rmdir t (ENOTEMPTY); then, with no call counted
// between, open t again.
Deno.test("a folder refilled before its rmdir and moved away before it is opened again counts as removed", async () => {
  await inTemp(async (base) => {
    const t = join(base, "t");
    Deno.mkdirSync(t);
    let window = { made: () => false, disarm: () => {} };
    const budget = new Interleaved({
      4: () => {
        Deno.writeTextFileSync(join(t, "again"), "x");
        window = atNextFailure(() => Deno.renameSync(t, join(base, "away")));
      },
    });
    try {
      assert.deepEqual(await removeEntry(base, "t", budget), { removed: true });
    } finally {
      window.disarm();
    }
    assert.ok(window.made());
    assert.equal(budget.used, 4, "the folder was not walked again");
    assert.equal(Deno.readTextFileSync(join(base, "away", "again")), "x");
  });
});
