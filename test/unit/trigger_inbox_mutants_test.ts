/**
 * What FileTriggerInbox promises, held against real folders (tmpfs, so the order the folder
 * lists its entries is known and differs from stamp order): claiming the trigger out of the data
 * folder, finishing the claim a killed process left staged, listing and settling the claim
 * folder oldest first, moving a claim through started/waiting, removing it. An entry that cannot
 * be moved or removed is made with `chattr +i` (root, as the tests run), the way a file the bot's
 * container set immutable would be.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Claim,
  CLAIM_DIR,
  FileTriggerInbox,
  STAGE_PREFIX,
} from "../../lib/adapters/trigger_inbox.ts";
import { TRIGGER_FILE } from "../../lib/adapters/files.ts";
import { MAX_TRIGGER_BYTES, parseTrigger } from "../../lib/watch/trigger.ts";

const OLD = "000001700000001-000001-0000abcd";
const MID = "000001700000002-000002-0000abcd";
const NEW = "000001700000003-000003-0000abcd";

interface World {
  base: string;
  dataDir: string;
  stateDir: string;
  claimDir: string;
  /** What the inbox said it had to leave, in order. */
  left: [string, string][];
  inbox: FileTriggerInbox;
}

async function world(now: () => number = () => 1_700_000_000_000): Promise<World> {
  const base = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "hbt-inbox-" });
  const dataDir = join(base, "data");
  const stateDir = join(base, "state");
  await Deno.mkdir(dataDir);
  await Deno.mkdir(stateDir);
  const left: [string, string][] = [];
  const inbox = new FileTriggerInbox(dataDir, stateDir, now, (where, why) => {
    left.push([where, why]);
  });
  return { base, dataDir, stateDir, claimDir: join(stateDir, CLAIM_DIR), left, inbox };
}

/** Runs `fn` in a fresh world and removes it afterwards, immutable entries included. */
async function inWorld(
  fn: (w: World) => Promise<void>,
  now?: () => number,
): Promise<void> {
  const w = await world(now);
  try {
    await fn(w);
  } finally {
    await unpin(w.base);
    await Deno.remove(w.base, { recursive: true });
  }
}

async function chattr(...args: string[]): Promise<void> {
  const out = await new Deno.Command("chattr", { args, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(
      `chattr ${args.join(" ")} failed (these tests need root and a file system with the ` +
        `immutable flag): ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

/** Makes `path` immutable: not even root can rename or remove it until the flag is cleared. */
const immutable = (path: string) => chattr("+i", path);

/** Clears the immutable flag of every file and folder under `base` (chattr reads no other kind). */
async function unpin(base: string): Promise<void> {
  const out = await new Deno.Command("find", {
    args: [base, "(", "-type", "f", "-o", "-type", "d", ")", "-exec", "chattr", "-i", "{}", "+"],
  }).output();
  if (!out.success) throw new Error(`could not clear the immutable flags under ${base}`);
}

/** Blocks the whole process for `ms` (the removal budget is wall time). */
function blockFor(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const text = (bytes: Uint8Array | null) => new TextDecoder().decode(bytes ?? new Uint8Array());
const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((x, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest])
  );
}

// ---------------------------------------------------------------------------------------------
// claim()

Deno.test("claim with no trigger in the data folder returns null and does not make the claim folder", async () => {
  await inWorld(async (w) => {
    assert.equal(await w.inbox.claim(), null);
    assert.deepEqual(names(w.stateDir), []);
  });
});

Deno.test("claim moves the trigger's bytes into a claim file only its owner can read and empties the data folder", async () => {
  await inWorld(async (w) => {
    await Deno.writeTextFile(join(w.dataDir, TRIGGER_FILE), "127.0.0.1:5000/app:v2\n");
    const claim = await w.inbox.claim();
    assert.ok(claim);
    assert.equal(text(claim.content.bytes), "127.0.0.1:5000/app:v2\n");
    assert.deepEqual(names(w.dataDir), []);
    assert.deepEqual(names(w.claimDir), [claim.stamp]);
    assert.equal((await Deno.stat(join(w.claimDir, claim.stamp))).mode! & 0o777, 0o600);
  });
});

Deno.test("a claim made with a small random number still gets a full-width stamp, and the next start finds it", async () => {
  // The random part is 8 hex digits, zero-padded: 1 in 16 draws starts with a zero.
  const real = crypto.getRandomValues;
  crypto.getRandomValues = (<T extends ArrayBufferView | null>(array: T): T => {
    if (array instanceof Uint32Array) array.fill(1);
    return array;
  }) as typeof crypto.getRandomValues;
  try {
    await inWorld(async (w) => {
      await Deno.writeTextFile(join(w.dataDir, TRIGGER_FILE), "127.0.0.1:5000/app:v2\n");
      const claim = await w.inbox.claim();
      assert.match(claim?.stamp ?? "", /^\d{15}-\d{6}-00000001$/);
      const pending = await w.inbox.pending();
      assert.deepEqual(pending.map((c) => c.stamp), [claim!.stamp]);
    });
  } finally {
    crypto.getRandomValues = real;
  }
});

Deno.test("claim returns null when the trigger vanishes between being seen and being moved", async () => {
  let trigger = "";
  await inWorld(async (w) => {
    trigger = join(w.dataDir, TRIGGER_FILE);
    await Deno.writeTextFile(trigger, "127.0.0.1:5000/app:v2\n");
    // The clock is read between the look and the rename: the container removes it right then.
    assert.equal(await w.inbox.claim(), null);
    assert.deepEqual(names(w.dataDir), []);
  }, () => {
    Deno.removeSync(trigger);
    return 1_700_000_000_000;
  });
});

Deno.test("claim throws when the trigger cannot be moved, rather than taking it for no trigger", async () => {
  await inWorld(async (w) => {
    const trigger = join(w.dataDir, TRIGGER_FILE);
    await Deno.writeTextFile(trigger, "127.0.0.1:5000/app:v2\n");
    await immutable(trigger);
    await assert.rejects(() => w.inbox.claim(), /EPERM|not permitted/i);
  });
});

Deno.test("a staged trigger that cannot be removed is reported with the reason it was left", async () => {
  await inWorld(async (w) => {
    const trigger = join(w.dataDir, TRIGGER_FILE);
    await Deno.mkdir(trigger);
    await Deno.writeTextFile(join(trigger, "pinned"), "x");
    await immutable(join(trigger, "pinned"));
    const claim = await w.inbox.claim();
    assert.ok(claim);
    assert.equal(claim.content.kind, "directory");
    assert.equal(w.left.length, 1);
    assert.equal(w.left[0][0], join(w.dataDir, STAGE_PREFIX + claim.stamp));
    assert.match(w.left[0][1], /EPERM|not permitted/i);
  });
});

Deno.test("a reporter given by reportLeftTo replaces the one given to the constructor", async () => {
  await inWorld(async (w) => {
    const later: string[] = [];
    w.inbox.reportLeftTo((where) => later.push(where));
    const trigger = join(w.dataDir, TRIGGER_FILE);
    await Deno.mkdir(trigger);
    await Deno.writeTextFile(join(trigger, "pinned"), "x");
    await immutable(join(trigger, "pinned"));
    const claim = await w.inbox.claim();
    assert.deepEqual(later, [join(w.dataDir, STAGE_PREFIX + claim!.stamp)]);
    assert.deepEqual(w.left, []);
  });
});

/** A subprocess holding a write lease on a new file at `path` (see trigger_lease_test.ts). */
async function leased(path: string, content: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", new URL("../support/lease_holder.ts", import.meta.url).pathname]
      .concat([path, content]),
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  reader.releaseLock();
  const kill = async () => {
    try {
      child.kill();
    } catch { /* exited already */ }
    await child.stdout.cancel();
    await child.status;
  };
  if (!first.includes("leased")) {
    await kill();
    throw new Error(`the lease holder did not take its lease: ${first}`);
  }
  return { kill };
}

Deno.test("a trigger that cannot be read comes back as a claim of kind 'other' saying why", async () => {
  await inWorld(async (w) => {
    const holder = await leased(join(w.dataDir, TRIGGER_FILE), "127.0.0.1:5000/app:v2\n");
    try {
      const claim = await w.inbox.claim();
      assert.ok(claim);
      assert.equal(claim.content.kind, "other");
      assert.equal(claim.content.bytes, null);
      assert.match(claim.content.unreadable ?? "", /EAGAIN|temporarily unavailable/i);
    } finally {
      await holder.kill();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// pending(): staged names left in the data folder

Deno.test("of the staged names a killed process left, only the newest is finished, whatever order the folder lists them in", async () => {
  for (const order of permutations([OLD, MID, NEW])) {
    await inWorld(async (w) => {
      for (const stamp of order) {
        await Deno.writeTextFile(join(w.dataDir, STAGE_PREFIX + stamp), `img:${stamp}`);
      }
      const claims = await w.inbox.pending();
      assert.deepEqual(claims.map((c) => c.stamp), [NEW], `created in order ${order}`);
      assert.equal(text(claims[0].content.bytes), `img:${NEW}`);
      assert.equal(claims[0].claimedAt, 1_700_000_003);
      assert.deepEqual(names(w.dataDir), [], `created in order ${order}`);
      assert.deepEqual(w.left, []);
    });
  }
});

Deno.test("staged names that are not a claim's stamp are not finished and are no error", async () => {
  await inWorld(async (w) => {
    await Deno.writeTextFile(join(w.dataDir, STAGE_PREFIX + "junk"), "x");
    await Deno.writeTextFile(join(w.dataDir, STAGE_PREFIX + NEW + ".started-5"), "img:started");
    await Deno.writeTextFile(join(w.dataDir, STAGE_PREFIX + OLD), "img:old");
    await Deno.writeTextFile(join(w.dataDir, STAGE_PREFIX + "x" + MID), "x");
    const claims = await w.inbox.pending();
    assert.deepEqual(claims.map((c) => [c.stamp, c.startedAt, text(c.content.bytes)]), [
      [OLD, null, "img:old"],
    ]);
    assert.deepEqual(w.left, []);
  });
});

Deno.test("a start with nothing staged and nothing claimed reports nothing", async () => {
  await inWorld(async (w) => {
    assert.deepEqual(await w.inbox.pending(), []);
    assert.deepEqual(w.left, []);
  });
});

Deno.test("a staged name whose claim file was already written is removed unread: the claim keeps the bytes first claimed", async () => {
  await inWorld(async (w) => {
    await Deno.mkdir(w.claimDir);
    await Deno.writeTextFile(join(w.claimDir, NEW), "img:claimed");
    await Deno.writeTextFile(join(w.dataDir, STAGE_PREFIX + NEW), "img:rewritten");
    const claims = await w.inbox.pending();
    assert.deepEqual(claims.map((c) => [c.stamp, text(c.content.bytes)]), [[NEW, "img:claimed"]]);
    assert.deepEqual(names(w.dataDir), []);
  });
});

Deno.test("a staged name whose claim was already handed to the update is removed unread: no second claim with its stamp", async () => {
  // The container saw the staged name while the claim was made and planted it again; the
  // watcher was then killed during the update that claim started.
  await inWorld(async (w) => {
    await Deno.mkdir(w.claimDir);
    await Deno.writeTextFile(join(w.claimDir, `${NEW}.started-1700000000500`), "img:claimed");
    await Deno.writeTextFile(join(w.dataDir, STAGE_PREFIX + NEW), "img:planted");
    const claims = await w.inbox.pending();
    assert.deepEqual(
      claims.map((c) => [c.stamp, c.startedAt, text(c.content.bytes)]),
      [[NEW, 1700000000500, "img:claimed"]],
    );
    assert.deepEqual(names(w.dataDir), []);
    assert.deepEqual(names(w.claimDir), [`${NEW}.started-1700000000500`]);
  });
});

Deno.test("a staged name that vanishes before it is finished is no error", async () => {
  await inWorld(async (w) => {
    await Deno.writeTextFile(join(w.dataDir, STAGE_PREFIX + OLD), "img:old");
    await immutable(join(w.dataDir, STAGE_PREFIX + OLD));
    await Deno.writeTextFile(join(w.dataDir, STAGE_PREFIX + NEW), "img:new");
    const w2 = new FileTriggerInbox(w.dataDir, w.stateDir, Date.now, (where, why) => {
      w.left.push([where, why]);
      // The older one could not be removed; meanwhile the container removes the newest.
      Deno.removeSync(join(w.dataDir, STAGE_PREFIX + NEW));
    });
    assert.deepEqual(await w2.pending(), []);
    assert.equal(w.left.length, 1);
    assert.equal(w.left[0][0], join(w.dataDir, STAGE_PREFIX + OLD));
    assert.match(w.left[0][1], /EPERM|not permitted/i);
  });
});

Deno.test("once a start has spent its removal budget, older staged names and leftovers in the claim folder are left for the next start", async () => {
  await inWorld(async (w) => {
    await Deno.mkdir(w.claimDir);
    await Deno.writeTextFile(join(w.claimDir, `${OLD}.tmp`), "half written");
    await Deno.writeTextFile(join(w.dataDir, STAGE_PREFIX + OLD), "img:old");
    await immutable(join(w.dataDir, STAGE_PREFIX + OLD));
    await Deno.writeTextFile(join(w.dataDir, STAGE_PREFIX + MID), "img:mid");
    await Deno.writeTextFile(join(w.dataDir, STAGE_PREFIX + NEW), "img:new");
    const inbox = new FileTriggerInbox(w.dataDir, w.stateDir, Date.now, (where, why) => {
      w.left.push([where, why]);
      blockFor(850); // the first removal took longer than a start may spend on removals
    });
    const claims = await inbox.pending();
    assert.deepEqual(claims.map((c) => c.stamp), [NEW]);
    assert.deepEqual(w.left.map(([where]) => where), [join(w.dataDir, STAGE_PREFIX + OLD)]);
    assert.deepEqual(names(w.dataDir), [STAGE_PREFIX + OLD, STAGE_PREFIX + MID].sort());
    assert.deepEqual(names(w.claimDir), [NEW, `${OLD}.tmp`].sort());
  });
});

Deno.test("a data folder that cannot be listed is reported once and the claims already taken are still listed", async () => {
  await inWorld(async (w) => {
    await Deno.remove(w.dataDir);
    await Deno.writeTextFile(w.dataDir, "not a folder");
    await Deno.mkdir(w.claimDir);
    await Deno.writeTextFile(join(w.claimDir, OLD), "img:old");
    const claims = await w.inbox.pending();
    assert.deepEqual(claims.map((c) => c.stamp), [OLD]);
    assert.equal(w.left.length, 1);
    assert.equal(w.left[0][0], join(w.dataDir, `${STAGE_PREFIX}*`));
    assert.match(w.left[0][1], /not a directory/i);
  });
});

Deno.test("a data folder that is gone is no error at start: the claims already taken are listed", async () => {
  await inWorld(async (w) => {
    await Deno.remove(w.dataDir);
    await Deno.mkdir(w.claimDir);
    await Deno.writeTextFile(join(w.claimDir, OLD), "img:old");
    assert.deepEqual((await w.inbox.pending()).map((c) => c.stamp), [OLD]);
    assert.deepEqual(w.left, []);
  });
});

// ---------------------------------------------------------------------------------------------
// pending(): the claim folder

Deno.test("claims come back oldest first, whatever order the claim folder lists them in", async () => {
  for (const order of permutations([OLD, MID, `${NEW}.started-7`])) {
    await inWorld(async (w) => {
      await Deno.mkdir(w.claimDir);
      for (const name of order) await Deno.writeTextFile(join(w.claimDir, name), `img:${name}`);
      const claims = await w.inbox.pending();
      assert.deepEqual(
        claims.map((c) => [c.stamp, c.claimedAt, c.startedAt]),
        [[OLD, 1_700_000_001, null], [MID, 1_700_000_002, null], [NEW, 1_700_000_003, 7]],
        `created in order ${order}`,
      );
    });
  }
});

Deno.test("entries in the claim folder whose name is not exactly a stamp are removed, not listed, and not reported", async () => {
  await inWorld(async (w) => {
    await Deno.mkdir(w.claimDir);
    const junk = [`9${OLD}`, `x${OLD}`, `${OLD}.tmp`, `${MID}.started-5x`, `${MID}.started-`];
    for (const name of junk) await Deno.writeTextFile(join(w.claimDir, name), "img:x");
    await Deno.writeTextFile(join(w.claimDir, NEW), "img:new");
    assert.deepEqual((await w.inbox.pending()).map((c) => c.stamp), [NEW]);
    assert.deepEqual(names(w.claimDir), [NEW]);
    assert.deepEqual(w.left, []);
  });
});

Deno.test("an entry in the claim folder that cannot be removed is reported with the reason it was left", async () => {
  await inWorld(async (w) => {
    await Deno.mkdir(w.claimDir);
    await Deno.writeTextFile(join(w.claimDir, "leftover"), "x");
    await immutable(join(w.claimDir, "leftover"));
    assert.deepEqual(await w.inbox.pending(), []);
    assert.equal(w.left.length, 1);
    assert.equal(w.left[0][0], join(w.claimDir, "leftover"));
    assert.match(w.left[0][1], /EPERM|not permitted/i);
  });
});

Deno.test("a claim file is read up to one byte past the largest trigger, so a too-large one is rejected as such", async () => {
  await inWorld(async (w) => {
    await Deno.mkdir(w.claimDir);
    await Deno.writeFile(join(w.claimDir, OLD), new Uint8Array(MAX_TRIGGER_BYTES).fill(0x61));
    await Deno.writeFile(join(w.claimDir, NEW), new Uint8Array(MAX_TRIGGER_BYTES + 2).fill(0x61));
    const [fits, tooLarge] = await w.inbox.pending();
    assert.equal(fits.content.bytes?.length, MAX_TRIGGER_BYTES);
    assert.equal(tooLarge.content.bytes?.length, MAX_TRIGGER_BYTES + 1);
    assert.throws(() => parseTrigger(tooLarge.content), /larger than 4096 bytes/);
  });
});

// ---------------------------------------------------------------------------------------------
// markStarted, unmarkStarted, remove

function notAFile(stamp: string, startedAt: number | null = null): Claim {
  return { stamp, claimedAt: 1, startedAt, content: { kind: "directory", bytes: null } };
}

Deno.test("a claim that is not a regular file is marked started and back without a claim file", async () => {
  await inWorld(async (w) => {
    await Deno.mkdir(w.claimDir);
    const started = await w.inbox.markStarted(notAFile(NEW), 42);
    assert.equal(started.startedAt, 42);
    const waiting = await w.inbox.unmarkStarted(started);
    assert.equal(waiting.startedAt, null);
    assert.deepEqual(names(w.claimDir), []);
  });
});

Deno.test("a claim file moves to its started name and back", async () => {
  await inWorld(async (w) => {
    await Deno.mkdir(w.claimDir);
    await Deno.writeTextFile(join(w.claimDir, NEW), "img:new");
    const [claim] = await w.inbox.pending();
    const started = await w.inbox.markStarted(claim, 42);
    assert.deepEqual(names(w.claimDir), [`${NEW}.started-42`]);
    assert.deepEqual(await w.inbox.pending(), [started]);
    const waiting = await w.inbox.unmarkStarted(started);
    assert.deepEqual(names(w.claimDir), [NEW]);
    assert.deepEqual(waiting, claim);
  });
});

Deno.test("unmarking a claim that is not started does nothing, even when its file is gone", async () => {
  await inWorld(async (w) => {
    await Deno.mkdir(w.claimDir);
    await Deno.writeTextFile(join(w.claimDir, NEW), "img:new");
    const [claim] = await w.inbox.pending();
    await w.inbox.remove(claim);
    assert.deepEqual(await w.inbox.unmarkStarted(claim), claim);
    assert.deepEqual(names(w.claimDir), []);
  });
});

Deno.test("removing a claim twice is no error", async () => {
  await inWorld(async (w) => {
    await Deno.mkdir(w.claimDir);
    await Deno.writeTextFile(join(w.claimDir, NEW), "img:new");
    const [claim] = await w.inbox.pending();
    await w.inbox.remove(claim);
    await w.inbox.remove(claim);
    assert.deepEqual(names(w.claimDir), []);
  });
});

Deno.test("removing a claim whose file cannot be removed throws", async () => {
  await inWorld(async (w) => {
    await Deno.mkdir(w.claimDir);
    await Deno.writeTextFile(join(w.claimDir, NEW), "img:new");
    const [claim] = await w.inbox.pending();
    await immutable(join(w.claimDir, NEW));
    await assert.rejects(() => w.inbox.remove(claim), /EPERM|not permitted/i);
  });
});

// ---------------------------------------------------------------------------------------------
// hasTrigger, dataDirIdentity

Deno.test("hasTrigger says whether a trigger entry of any kind is in the data folder", async () => {
  await inWorld(async (w) => {
    assert.equal(await w.inbox.hasTrigger(), false);
    await Deno.symlink("/nowhere", join(w.dataDir, TRIGGER_FILE));
    assert.equal(await w.inbox.hasTrigger(), true);
  });
});

Deno.test("dataDirIdentity is the data folder's dev:ino, and null once it is gone", async () => {
  await inWorld(async (w) => {
    const info = await Deno.stat(w.dataDir);
    assert.equal(await w.inbox.dataDirIdentity(), `${info.dev}:${info.ino}`);
    await Deno.remove(w.dataDir);
    assert.equal(await w.inbox.dataDirIdentity(), null);
  });
});
