/**
 * Root's record of how updates ended (stateDir), written beside the bot's status file: a
 * rejection never replaces the last update, progress is not an ended update.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { FileUpdateRecordStore } from "../../lib/adapters/files.ts";
import { recordingStatus } from "../../lib/update/records.ts";
import type { StatusFile } from "../../lib/update/report.ts";
import { FakeStatus } from "../fakes/state.ts";

const BASE: StatusFile = {
  id: "upd-1",
  state: "rolled_back",
  container: "bot",
  image: "127.0.0.1:5000/hyperbot/app:v3",
  previousImage: "127.0.0.1:5000/hyperbot/app:v2",
  imageId: "sha256:bbb",
  startedAt: "2026-11-29T11:00:00Z",
  finishedAt: "2026-11-29T11:00:30Z",
  error: "the new container failed: exit code 1",
  warnings: [],
  steps: [],
};

Deno.test("a rejected trigger after a rollback leaves root's record of the rollback in place", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hyperbot-records-" });
  try {
    const records = new FileUpdateRecordStore(join(dir, "state"));
    const page = new FakeStatus();
    const status = recordingStatus(page, records);
    await status.write({ ...BASE, id: "upd-2", state: "verifying", finishedAt: null });
    assert.equal(await records.lastUpdate(), null, "progress is not an ended update");
    await status.write(BASE);
    await status.write({
      ...BASE,
      id: "trg-1",
      state: "rejected",
      error: "rejected trigger: it is empty",
    });
    assert.equal(page.current?.state, "rejected", "the bot's page shows the rejection");
    assert.equal((await records.lastUpdate())?.state, "rolled_back");
    assert.equal((await records.lastUpdate())?.id, "upd-1");
    assert.equal((await records.lastRejection())?.id, "trg-1");
    const mode = (await Deno.stat(join(dir, "state", "last-result.json"))).mode! & 0o777;
    assert.equal(mode & 0o002, 0, "not writable by others");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the record is written even when the bot's status file cannot be", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hyperbot-records-" });
  try {
    const records = new FileUpdateRecordStore(dir);
    const page = new FakeStatus();
    page.write = () => Promise.reject(new Error("disk full"));
    await assert.rejects(recordingStatus(page, records).write(BASE), /disk full/);
    assert.equal((await records.lastUpdate())?.state, "rolled_back");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every way an update ends is recorded as the last update, and no progress state is", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hyperbot-records-" });
  try {
    const records = new FileUpdateRecordStore(dir);
    const status = recordingStatus(new FakeStatus(), records);
    for (const state of ["succeeded", "unchanged", "rolled_back", "failed"] as const) {
      await status.write({ ...BASE, id: `upd-${state}`, state });
      assert.equal((await records.lastUpdate())?.id, `upd-${state}`, state);
      for (
        const progress of ["pulling", "creating", "stopping", "starting", "verifying"] as const
      ) {
        await status.write({ ...BASE, id: `upd-${progress}`, state: progress, finishedAt: null });
      }
      assert.equal((await records.lastUpdate())?.id, `upd-${state}`, `${state} stays recorded`);
    }
    assert.equal(await records.lastRejection(), null, "no update is a rejection");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a record that cannot be written fails the write, though the bot's status file got it", async () => {
  const page = new FakeStatus();
  const records = {
    lastUpdate: () => Promise.resolve(null),
    lastRejection: () => Promise.resolve(null),
    record: () => Promise.reject(new Error("state folder read-only")),
  };
  await assert.rejects(recordingStatus(page, records).write(BASE), /state folder read-only/);
  assert.equal(page.current?.id, "upd-1");
});

Deno.test("the recording store reads and appends the history of the bot's status file, as it is", async () => {
  const page = new FakeStatus();
  const status = recordingStatus(page, {
    lastUpdate: () => Promise.reject(new Error("records are not read here")),
    lastRejection: () => Promise.reject(new Error("records are not read here")),
    record: () => Promise.resolve(),
  });
  page.current = { ...BASE, id: "written-by-the-bot" };
  assert.equal((await status.read())?.id, "written-by-the-bot");
  await status.appendHistory(BASE);
  assert.deepEqual(page.history, [BASE]);
});
