/**
 * The outbox on disk, shared by watch, update and health: an entry is held by one process at a
 * time, one that was delivered meanwhile is not delivered again, the outbox stays bounded, and
 * the notify state is updated under a lock.
 */

import assert from "node:assert/strict";
import { FileNotifyStateStore, FileOutboxStore } from "../../lib/adapters/notify_files.ts";
import { newNotification } from "../../lib/notify/events.ts";
import type { OutboxEntry } from "../../lib/notify/notifier.ts";

function entry(id: string, createdAt: string): OutboxEntry {
  return {
    id,
    channel: "webhook",
    notification: newNotification({ event: "test", at: createdAt, host: "h", container: "c" }),
    createdAt,
    attempts: 0,
    nextAt: createdAt,
    lastError: null,
  };
}

Deno.test("an outbox entry is held by one taker at a time, and one removed meanwhile is not taken again", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = new FileOutboxStore(dir);
    const b = new FileOutboxStore(dir); // another process's view of the same folder
    await a.add(entry("e1", "2026-11-29T12:00:00.000Z"), 10);
    assert.deepEqual((await b.list()).map((e) => e.id), ["e1"]);
    const held = await a.take("e1");
    assert.ok(held);
    assert.equal(await b.take("e1"), null, "a second taker gets nothing while it is held");
    await held.remove();
    await held.release();
    assert.equal(await b.take("e1"), null, "delivered and removed: nothing to take");
    assert.deepEqual(await b.list(), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a rescheduled outbox entry keeps its new attempt count for the next taker", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new FileOutboxStore(dir);
    await store.add(entry("e1", "2026-11-29T12:00:00.000Z"), 10);
    const held = (await store.take("e1"))!;
    await held.reschedule({ ...held.entry, attempts: 1, nextAt: "2026-11-29T12:00:05.000Z" });
    await held.release();
    const again = (await store.take("e1"))!;
    assert.equal(again.entry.attempts, 1);
    assert.equal(again.entry.nextAt, "2026-11-29T12:00:05.000Z");
    await again.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the outbox keeps at most its bound, dropping the oldest; a torn file is removed, not retried", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new FileOutboxStore(dir);
    await store.add(entry("e1", "2026-11-29T12:00:01.000Z"), 2);
    await store.add(entry("e2", "2026-11-29T12:00:02.000Z"), 2);
    const dropped = await store.add(entry("e3", "2026-11-29T12:00:03.000Z"), 2);
    assert.deepEqual(dropped.map((e) => e.id), ["e1"]);
    assert.deepEqual((await store.list()).map((e) => e.id).sort(), ["e2", "e3"]);
    await Deno.writeTextFile(`${dir}/notify/outbox/e2.json`, '{"id": "e2", "chan');
    assert.equal(await store.take("e2"), null);
    assert.deepEqual((await store.list()).map((e) => e.id), ["e3"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("notify state updates from two writers at once both land", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = new FileNotifyStateStore(dir);
    const b = new FileNotifyStateStore(dir);
    await Promise.all([
      ...Array.from({ length: 10 }, (_, i) =>
        a.update((s) => {
          s.channels[`a${i}`] = { lastDelivery: null, lastFailure: null };
        })),
      ...Array.from({ length: 10 }, (_, i) =>
        b.update((s) => {
          s.channels[`b${i}`] = { lastDelivery: null, lastFailure: null };
        })),
    ]);
    assert.equal(Object.keys((await a.read()).channels).length, 20);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
