/**
 * The data folder as the attacker in the bot's container leaves it (issue 8): folders deeper
 * than any path, folder handles kept open into what the watcher claims, device nodes swapped
 * in while the watcher reads, entries it cannot clear. Each test fails on the code before
 * lib/adapters/data_dir.ts.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { readEntry, RemovalBudget, removeEntry } from "../../lib/adapters/data_dir.ts";
import { FileStatusStore, HISTORY_FILE, STATUS_FILE } from "../../lib/adapters/files.ts";
import { CLAIM_DIR, FileTriggerInbox, STAGE_PREFIX } from "../../lib/adapters/trigger_inbox.ts";
import { close, O_CREAT_EXCL_WRONLY, openat } from "../../lib/adapters/libc.ts";
import type { StatusFile } from "../../lib/update/report.ts";
import {
  countOpens,
  holdFolder,
  makeCharDevice,
  makeDeepFolder,
  startSwapLoop,
} from "../support/hostile.ts";

const DEEP = 12_000;

/** Fresh data and state folders; `fast`: on /dev/shm (tmpfs), where folder removal is quick. */
async function dirs(fast = false) {
  const base = await Deno.makeTempDir({
    prefix: "hbt-datadir-",
    dir: fast ? "/dev/shm" : undefined,
  });
  const dataDir = join(base, "data");
  const stateDir = join(base, "state");
  await Deno.mkdir(dataDir);
  await Deno.mkdir(stateDir);
  return {
    base,
    dataDir,
    stateDir,
    trigger: join(dataDir, ".update_trigger"),
    cleanup: () =>
      removeEntry(join(base, ".."), base.split("/").pop()!, new RemovalBudget(1e7, 60_000)),
  };
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/**
 * Starts (pending()) until `dir` is empty, as systemd restarts would: each is bounded, so a
 * tree too big for one budget goes over a few. Returns how many it took.
 */
async function startsUntilEmpty(inbox: FileTriggerInbox, dir: string): Promise<number> {
  for (let starts = 1; starts <= 100; starts++) {
    assert.deepEqual(await inbox.pending(), []);
    if ((await names(dir)).length === 0) return starts;
  }
  throw new Error(`${dir} is not empty after 100 starts: ${await names(dir)}`);
}

function recorder() {
  const left: string[] = [];
  return { left, report: (path: string, reason: string) => left.push(`${path}: ${reason}`) };
}

Deno.test("a trigger folder 12 000 levels deep is claimed without a crash, never reaches stateDir, and is removed over bounded steps", async () => {
  const d = await dirs(true);
  try {
    makeDeepFolder(d.trigger, DEEP);
    const r = recorder();
    const inbox = new FileTriggerInbox(d.dataDir, d.stateDir, Date.now, r.report);
    const claim = await inbox.claim();
    assert.deepEqual(claim?.content, { kind: "directory", bytes: null });
    assert.ok(r.left.length <= 1, r.left.join("\n"));
    assert.deepEqual(await names(join(d.stateDir, CLAIM_DIR)), []);
    // It does not hold up the next trigger.
    await Deno.writeTextFile(d.trigger, "127.0.0.1:5000/hyperbot/app:v2\n");
    assert.equal((await inbox.claim())?.content.kind, "file");
    await inbox.remove((await inbox.pending())[0]);
    await startsUntilEmpty(inbox, d.dataDir);
  } finally {
    await d.cleanup();
  }
});

Deno.test("a deep folder planted under the staging name before the start is removed by bounded starts", async () => {
  const d = await dirs(true);
  try {
    makeDeepFolder(join(d.dataDir, `${STAGE_PREFIX}000001700000000-000001-0000abcd`), DEEP);
    const inbox = new FileTriggerInbox(d.dataDir, d.stateDir);
    await startsUntilEmpty(inbox, d.dataDir);
    assert.deepEqual(await names(join(d.stateDir, CLAIM_DIR)), []);
  } finally {
    await d.cleanup();
  }
});

Deno.test("a deep folder an older version moved into the claim folder is removed by bounded starts", async () => {
  const d = await dirs(true);
  try {
    await Deno.mkdir(join(d.stateDir, CLAIM_DIR));
    makeDeepFolder(join(d.stateDir, CLAIM_DIR, "000001700000000-000001-0000abcd"), DEEP);
    const inbox = new FileTriggerInbox(d.dataDir, d.stateDir);
    await startsUntilEmpty(inbox, join(d.stateDir, CLAIM_DIR));
  } finally {
    await d.cleanup();
  }
});

Deno.test("a folder too big to clear in the budget is left, reported once, and the next trigger is claimed", async () => {
  const d = await dirs(true);
  try {
    await Deno.mkdir(d.trigger);
    for (let i = 0; i < 25_000; i++) Deno.writeFileSync(join(d.trigger, `f${i}`), new Uint8Array());
    const r = recorder();
    const inbox = new FileTriggerInbox(d.dataDir, d.stateDir, Date.now, r.report);
    const claim = await inbox.claim();
    assert.equal(claim?.content.kind, "directory");
    assert.equal(r.left.length, 1, r.left.join("\n"));
    assert.match(r.left[0], /\.update_trigger\.claimed-/);
    assert.deepEqual(await names(join(d.stateDir, CLAIM_DIR)), []);

    await Deno.writeTextFile(d.trigger, "127.0.0.1:5000/hyperbot/app:v2\n");
    const next = await inbox.claim();
    assert.equal(
      new TextDecoder().decode(next!.content.bytes!),
      "127.0.0.1:5000/hyperbot/app:v2\n",
    );
    assert.equal(r.left.length, 1, "reported once");
  } finally {
    await d.cleanup();
  }
});

Deno.test("removing a hostile folder never follows a link inside it to the host's files", async () => {
  const d = await dirs();
  try {
    const host = join(d.base, "host");
    await Deno.mkdir(host);
    await Deno.writeTextFile(join(host, "keep"), "host file");
    await Deno.mkdir(join(d.trigger, "a", "b"), { recursive: true });
    await Deno.symlink(host, join(d.trigger, "a", "b", "link"));
    await Deno.symlink(host, join(d.trigger, "link"));
    const claim = await new FileTriggerInbox(d.dataDir, d.stateDir).claim();
    assert.equal(claim?.content.kind, "directory");
    assert.deepEqual(await names(d.dataDir), []);
    assert.equal(await Deno.readTextFile(join(host, "keep")), "host file");
  } finally {
    await d.cleanup();
  }
});

Deno.test("a folder trigger whose handle the container keeps never points into stateDir", async () => {
  const d = await dirs();
  try {
    await Deno.mkdir(d.trigger);
    const handle = holdFolder(d.trigger);
    try {
      const claim = await new FileTriggerInbox(d.dataDir, d.stateDir).claim();
      assert.equal(claim?.content.kind, "directory");
      const where = handle.whereNow();
      assert.ok(!where.startsWith(d.stateDir), `the container's handle points at ${where}`);
      // What the container makes through its handle lands anywhere but in stateDir.
      try {
        close(openat(handle.fd, "planted", O_CREAT_EXCL_WRONLY, 0o644));
      } catch {
        // The folder is removed: creating in it fails, which is as good.
      }
      const all: string[] = [];
      for await (const e of Deno.readDir(d.stateDir)) all.push(e.name);
      assert.deepEqual(all, [CLAIM_DIR]);
      assert.deepEqual(await names(join(d.stateDir, CLAIM_DIR)), []);
    } finally {
      handle.close();
    }
  } finally {
    await d.cleanup();
  }
});

Deno.test("a regular-file trigger is copied into stateDir, never moved: the writer's handle stays in dataDir", async () => {
  const d = await dirs();
  try {
    const writer = await Deno.open(d.trigger, { write: true, create: true });
    try {
      await writer.write(new TextEncoder().encode("127.0.0.1:5000/hyperbot/app:v2\n"));
      const claim = await new FileTriggerInbox(d.dataDir, d.stateDir).claim();
      assert.equal(claim?.content.kind, "file");
      // Writing on through the kept handle changes nothing in stateDir.
      await writer.write(new Uint8Array(64 * 1024).fill(0x61));
      const [name] = await names(join(d.stateDir, CLAIM_DIR));
      assert.equal(
        await Deno.readTextFile(join(d.stateDir, CLAIM_DIR, name)),
        "127.0.0.1:5000/hyperbot/app:v2\n",
      );
    } finally {
      writer.close();
    }
  } finally {
    await d.cleanup();
  }
});

Deno.test("reading never opens a device node, a FIFO or a link, whatever is at the name", async () => {
  const d = await dirs();
  try {
    const device = join(d.base, "null");
    await makeCharDevice(device);
    await Deno.link(device, join(d.dataDir, "dev"));
    const fifo = join(d.dataDir, "fifo");
    assert.ok((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
    await Deno.symlink(device, join(d.dataDir, "link"));
    const opens = countOpens(device);
    try {
      assert.deepEqual(readEntry(join(d.dataDir, "dev"), 10), {
        kind: "character device",
        bytes: null,
      });
      assert.deepEqual(readEntry(fifo, 10), { kind: "fifo", bytes: null });
      assert.deepEqual(readEntry(join(d.dataDir, "link"), 10), { kind: "symlink", bytes: null });
      assert.equal(opens.count(), 0);
    } finally {
      opens.close();
    }
  } finally {
    await d.cleanup();
  }
});

function statusOf(i: number): StatusFile {
  return {
    id: `upd-${i}`,
    state: "rejected",
    container: "bot",
    image: null,
    previousImage: null,
    imageId: null,
    startedAt: new Date(0).toISOString(),
    finishedAt: new Date(0).toISOString(),
    error: "x",
    warnings: [],
    steps: [],
  };
}

Deno.test("history appends and status reads never open a device swapped in with RENAME_EXCHANGE", async () => {
  const d = await dirs();
  try {
    const device = join(d.base, "null");
    await makeCharDevice(device);
    const store = new FileStatusStore(d.dataDir);
    await store.appendHistory(statusOf(0));
    await store.write(statusOf(0));
    const opens = countOpens(device);
    const swapHistory = startSwapLoop(
      join(d.dataDir, HISTORY_FILE),
      join(d.dataDir, "decoy-h"),
      device,
    );
    const swapStatus = startSwapLoop(
      join(d.dataDir, STATUS_FILE),
      join(d.dataDir, "decoy-s"),
      device,
    );
    let swaps = 0;
    try {
      for (let i = 1; i <= 600; i++) {
        await store.appendHistory(statusOf(i));
        await store.read();
        if (i % 50 === 0) await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      swaps = (await swapHistory.stop()) + (await swapStatus.stop());
    }
    try {
      assert.ok(swaps > 1_000, `the swap loops ran (${swaps} swaps)`);
      assert.equal(opens.count(), 0, "the device was opened");
    } finally {
      opens.close();
    }
  } finally {
    await d.cleanup();
  }
});
