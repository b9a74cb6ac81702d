import assert from "node:assert/strict";
import { join } from "node:path";
import {
  FileJournalStore,
  FileStatusStore,
  FlockUpdateLock,
  HISTORY_FILE,
  MAX_HISTORY_BYTES,
  STATUS_FILE,
  writeFileAtomic,
} from "../../lib/adapters/files.ts";
import { readEntry } from "../../lib/adapters/data_dir.ts";
import { LockedError, UpdateFailedError } from "../../lib/errors.ts";
import type { StatusFile } from "../../lib/update/report.ts";

function status(id: string): StatusFile {
  return {
    id,
    state: "succeeded",
    container: "bot",
    image: "r.example.com/a:1",
    previousImage: null,
    imageId: null,
    startedAt: "2026-11-29T00:00:00Z",
    finishedAt: "2026-11-29T00:00:01Z",
    error: null,
    warnings: [],
    steps: [],
  };
}

Deno.test("an atomic write gets exactly its mode, whatever the umask", async () => {
  const dir = await Deno.makeTempDir();
  const previous = Deno.umask(0o077);
  try {
    await writeFileAtomic(join(dir, "s.json"), "{}", { mode: 0o644 });
    assert.equal((await Deno.stat(join(dir, "s.json"))).mode! & 0o777, 0o644);
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name),
      ["s.json"],
      "no temp file left",
    );
  } finally {
    Deno.umask(previous);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the status file replaces a planted link instead of writing through it", async () => {
  const dir = await Deno.makeTempDir();
  const victim = join(dir, "victim");
  await Deno.writeTextFile(victim, "host secret");
  await Deno.mkdir(join(dir, "data"));
  await Deno.symlink(victim, join(dir, "data", STATUS_FILE));
  await Deno.symlink(victim, join(dir, "data", HISTORY_FILE));
  try {
    const store = new FileStatusStore(join(dir, "data"));
    await store.write(status("a"));
    await store.appendHistory(status("a"));
    assert.equal(await Deno.readTextFile(victim), "host secret");
    assert.ok((await Deno.lstat(join(dir, "data", STATUS_FILE))).isFile);
    const history = await Deno.readTextFile(join(dir, "data", HISTORY_FILE));
    assert.ok(!history.includes("host secret"), "the link's target is not copied into the history");
    assert.equal(history.trim().split("\n").length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a link is not read as a regular file", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "target"), "x");
  await Deno.symlink(join(dir, "target"), join(dir, "link"));
  try {
    assert.deepEqual(readEntry(join(dir, "link"), 100), { kind: "symlink", bytes: null });
    assert.deepEqual(readEntry(join(dir, "target"), 100), {
      kind: "file",
      bytes: new TextEncoder().encode("x"),
    });
    assert.equal(readEntry(join(dir, "absent"), 100), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the history stays bounded and keeps the newest entries", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new FileStatusStore(dir);
    const big = { ...status("x"), error: "e".repeat(4000) };
    for (let i = 0; i < 150; i++) await store.appendHistory({ ...big, id: `u${i}` });
    const text = await Deno.readTextFile(join(dir, HISTORY_FILE));
    assert.ok(text.length <= MAX_HISTORY_BYTES, `${text.length} bytes`);
    const ids = text.trim().split("\n").map((l) => JSON.parse(l).id);
    assert.equal(ids.at(-1), "u149");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unreadable journal is an error with a hint, never read as no journal", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "journal.json"), "{ half a jour");
    await assert.rejects(new FileJournalStore(dir).read(), UpdateFailedError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the update lock is exclusive and names its holder", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lock = new FlockUpdateLock(dir);
    const held = await lock.acquire({ pid: 111, command: "update (cli)", since: "now" });
    assert.deepEqual(await lock.holder(), { pid: 111, command: "update (cli)", since: "now" });
    await assert.rejects(
      new FlockUpdateLock(dir).acquire({ pid: 222, command: "watch", since: "now" }),
      (e: unknown) => e instanceof LockedError && /pid 111 \(update \(cli\)\)/.test(e.message),
    );
    await held.release();
    assert.equal(await lock.holder(), null);
    const again = await lock.acquire({ pid: 222, command: "watch", since: "now" });
    await again.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the watcher lock is separate from the update lock and says what holds it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const watcher = new FlockUpdateLock(dir, "watch.lock", "another watcher is running");
    const held = await watcher.acquire({ pid: 7, command: "watch", since: "now" });
    const update = await new FlockUpdateLock(dir).acquire({
      pid: 8,
      command: "update",
      since: "now",
    });
    await assert.rejects(
      new FlockUpdateLock(dir, "watch.lock", "another watcher is running")
        .acquire({ pid: 9, command: "watch", since: "now" }),
      (e: unknown) =>
        e instanceof LockedError && /another watcher is running: held by pid 7/.test(e.message),
    );
    await update.release();
    await held.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
