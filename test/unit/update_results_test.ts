/**
 * What an ended update leaves behind, piece by piece: the downtime it measured, the images it
 * removed and the ones it kept, the last-update record `--rollback` and keepImages go by, the
 * status file and history line the bot reads, and the exit code.
 */

import assert from "node:assert/strict";
import type { ImageInfo, Images } from "../../lib/docker.ts";
import { MemoryLogger } from "../../lib/log.ts";
import { DowntimeMeter, meteredContainers } from "../../lib/update/downtime.ts";
import { pruneFailedImages, pruneImages } from "../../lib/update/images.ts";
import { publishResult, recordLastUpdate } from "../../lib/update/result.ts";
import {
  elapsedMs,
  exitCodeOfOutcome,
  type JournalEntry,
  reportOfJournal,
  stateOfOutcome,
  statusOfReport,
  STEPS,
  type UpdateReport,
} from "../../lib/update/report.ts";
import { FakeDockerEngine } from "../fakes/docker.ts";
import { FakeClock, FakeFailedImages, FakeLastUpdate, FakeStatus } from "../fakes/state.ts";

const T0 = Date.parse("2026-11-29T12:00:00Z");
const at = (ms: number) => new Date(T0 + ms);

Deno.test("downtime counts from the old container's first stop to the last start of a bot container", () => {
  const meter = new DowntimeMeter(new FakeClock(T0));
  assert.equal(meter.ms(), 0, "never taken down: no downtime");
  meter.down(at(1_000));
  assert.equal(meter.ms(), null, "down and not started again: the bot is still down");
  meter.down(at(3_000)); // a rollback stops the old container again
  meter.up(at(4_000)); // the new container starts (and fails)
  meter.up(at(9_000)); // the old one runs again
  assert.equal(meter.ms(), 8_000);
});

Deno.test("a start the clock puts before the stop is no downtime, never a negative one", () => {
  const meter = new DowntimeMeter(new FakeClock(T0));
  meter.down(at(5_000));
  meter.up(at(4_000));
  assert.equal(meter.ms(), 0);
});

Deno.test("a start before the bot was taken down does not count as it coming back", () => {
  const meter = new DowntimeMeter(new FakeClock(T0));
  meter.up(at(1_000));
  meter.down(at(2_000));
  assert.equal(meter.ms(), null, "still down: nothing started after the stop");
  meter.up(at(2_500));
  assert.equal(meter.ms(), 500);
});

Deno.test("the metered engine marks the bot down only at the old container's stop, and up at a start", async () => {
  const clock = new FakeClock(T0);
  const docker = new FakeDockerEngine({ now: () => clock.now() });
  docker.addImage("bot:1");
  const oldId = await docker.runContainer("bot", { Image: "bot:1" });
  const otherId = await docker.runContainer("other", { Image: "bot:1" });
  const meter = new DowntimeMeter(clock);
  const metered = meteredContainers(docker, meter, (id) => id === oldId);
  await metered.stopContainer(otherId);
  assert.equal(meter.ms(), 0, "another container's stop is not the bot's downtime");
  await clock.advance(1_000);
  await metered.stopContainer(oldId);
  assert.equal(docker.peek(oldId)?.State.Running, false, "the stop reached the engine");
  await clock.advance(250);
  await metered.startContainer(otherId);
  assert.equal(docker.peek(otherId)?.State.Running, true, "the start reached the engine");
  assert.equal(meter.ms(), 250);
  assert.equal((await metered.inspectContainer("bot"))?.id, oldId, "the rest passes through");
  assert.equal(metered.calls, docker.calls, "fields too, as they are");
});

/** Images by ID; `inUse` ones the daemon refuses to remove, as it does. */
class Shelf implements Pick<Images, "removeImage" | "inspectImage"> {
  readonly present: Set<string>;
  readonly removed: string[] = [];
  /** Every removal asked for, done or refused. */
  readonly tried: string[] = [];
  constructor(ids: string[], readonly inUse = new Set<string>()) {
    this.present = new Set(ids);
  }
  removeImage(id: string) {
    this.tried.push(id);
    if (!this.present.has(id) || this.inUse.has(id)) return Promise.resolve(false);
    this.present.delete(id);
    this.removed.push(id);
    return Promise.resolve(true);
  }
  inspectImage(id: string) {
    return Promise.resolve(this.present.has(id) ? { id } as ImageInfo : null);
  }
}

const images = (shelf: Shelf) => shelf as unknown as Images;

Deno.test("cleanup keeps the newest keepImages deployed images and at least the one the bot runs", async () => {
  const shelf = new Shelf(["run", "prev", "older", "oldest"], new Set(["older"]));
  const log = new MemoryLogger();
  const removed = await pruneImages(images(shelf), log, {
    deployedIds: ["run", "prev", "older", "oldest"],
    keepImages: 2,
  });
  assert.deepEqual(removed, ["oldest"], "an image in use is not reported as removed");
  assert.deepEqual([...shelf.present], ["run", "prev", "older"]);
  assert.deepEqual(
    log.lines.filter((l) => l.level === "info").map((l) => [l.message, l.fields.imageId]),
    [["removed old image", "oldest"]],
  );
  const zero = new Shelf(["run", "prev"]);
  await pruneImages(images(zero), log, { deployedIds: ["run", "prev"], keepImages: 0 });
  assert.deepEqual([...zero.present], ["run"], "keepImages 0 still keeps the running image");
});

Deno.test("failed images: the newest keepImages stay, protected and in-use ones are never removed, another container's list is not ours", async () => {
  const store = new FakeFailedImages();
  store.value = { container: "bot", imageIds: ["f3", "f2", "used", "f1", "run"] };
  const shelf = new Shelf(
    ["f4", "f3", "f2", "used", "f1", "run"],
    new Set(["used"]),
  );
  const log = new MemoryLogger();
  const removed = await pruneFailedImages(images(shelf), store, log, {
    container: "bot",
    imageId: "f4",
    keepImages: 2,
    protectedIds: new Set(["run"]),
  });
  assert.deepEqual(removed, ["f2", "f1"]);
  assert.deepEqual([...shelf.present].sort(), ["f3", "f4", "run", "used"]);
  assert.deepEqual(
    store.value,
    { container: "bot", imageIds: ["f4", "f3", "used"] },
    "an image the daemon kept is tried again next time; removed ones leave the list",
  );
  assert.deepEqual(
    log.lines.filter((l) => l.level === "info").map((l) => [l.message, l.fields.imageId]),
    [["removed the image of a failed update", "f2"], [
      "removed the image of a failed update",
      "f1",
    ]],
  );

  // The list was for another container: none of its images is a candidate.
  store.value = { container: "other-bot", imageIds: ["f3", "used"] };
  shelf.tried.length = 0;
  assert.deepEqual(
    await pruneFailedImages(images(shelf), store, log, {
      container: "bot",
      imageId: "f4",
      keepImages: 1,
      protectedIds: new Set(),
    }),
    [],
  );
  assert.deepEqual(shelf.tried, [], "another container's failed images are not even tried");
  assert.deepEqual(store.value, { container: "bot", imageIds: ["f4"] });
});

Deno.test("failed images: the same image failing again is listed once, and an image that is gone is forgotten", async () => {
  const store = new FakeFailedImages();
  store.value = { container: "bot", imageIds: ["f2", "f1", "vanished"] };
  const shelf = new Shelf(["f2", "f1"], new Set(["f1"]));
  await pruneFailedImages(images(shelf), store, new MemoryLogger(), {
    container: "bot",
    imageId: "f2",
    keepImages: 1,
    protectedIds: new Set(),
  });
  assert.deepEqual(store.value?.imageIds, ["f2", "f1"]);
  assert.ok(shelf.present.has("f2"), "the newest failed image stays for a retry");
});

Deno.test("failed images: keepImages 0 still keeps the newest, and the list never holds more than 50", async () => {
  const store = new FakeFailedImages();
  const ids = Array.from({ length: 60 }, (_, i) => `f${i}`);
  store.value = { container: "bot", imageIds: ids.slice(1) };
  const shelf = new Shelf(ids, new Set(ids)); // every one in use: none can go
  await pruneFailedImages(images(shelf), store, new MemoryLogger(), {
    container: "bot",
    imageId: "f0",
    keepImages: 0,
    protectedIds: new Set(),
  });
  assert.equal(store.value?.imageIds.length, 50);
  assert.deepEqual(store.value?.imageIds.slice(0, 2), ["f0", "f1"]);
  const free = new Shelf(["new", "old"]);
  store.value = { container: "bot", imageIds: ["old"] };
  await pruneFailedImages(images(free), store, new MemoryLogger(), {
    container: "bot",
    imageId: "new",
    keepImages: 0,
    protectedIds: new Set(),
  });
  assert.deepEqual([...free.present], ["new"]);
});

const LAST = {
  id: "upd-2",
  container: "bot",
  image: "reg/bot:2",
  imageId: "sha256:2",
  previousImage: "reg/bot:1",
  previousImageId: "sha256:1",
};

Deno.test("the last-update record lists the images deployed to this container, newest first, at most 20", async () => {
  const clock = new FakeClock(T0);
  const lastUpdate = new FakeLastUpdate();
  let last = await recordLastUpdate({ lastUpdate, clock }, LAST);
  assert.deepEqual(last, {
    ...LAST,
    finishedAt: "2026-11-29T12:00:00.000Z",
    recentImageIds: ["sha256:2", "sha256:1"],
  });
  assert.deepEqual(lastUpdate.value, last, "written for --rollback");
  for (let n = 3; n <= 30; n++) {
    last = await recordLastUpdate({ lastUpdate, clock }, {
      ...LAST,
      id: `upd-${n}`,
      image: `reg/bot:${n}`,
      imageId: `sha256:${n}`,
      previousImage: last.image,
      previousImageId: last.imageId,
    });
  }
  assert.equal(last.recentImageIds?.length, 20);
  assert.deepEqual(last.recentImageIds?.slice(0, 3), ["sha256:30", "sha256:29", "sha256:28"]);
});

Deno.test("the last-update record of another container, or of an older version, counts as it should", async () => {
  const clock = new FakeClock(T0);
  const lastUpdate = new FakeLastUpdate();
  lastUpdate.value = {
    ...LAST,
    container: "other-bot",
    finishedAt: "",
    recentImageIds: ["sha256:o2", "sha256:o1"],
  };
  const mine = await recordLastUpdate({ lastUpdate, clock }, { ...LAST, id: "upd-3" });
  assert.deepEqual(
    mine.recentImageIds,
    ["sha256:2", "sha256:1"],
    "another container's images are never ours to remove",
  );
  // A record written before recentImageIds existed: its two images are the history.
  const { recentImageIds: _, ...older } = mine;
  lastUpdate.value = older;
  const next = await recordLastUpdate({ lastUpdate, clock }, {
    ...LAST,
    image: "reg/bot:3",
    imageId: "sha256:3",
    previousImage: "reg/bot:2",
    previousImageId: "sha256:2",
  });
  assert.deepEqual(next.recentImageIds, ["sha256:3", "sha256:2", "sha256:1"]);
  // A first deployment with no previous image ID lists only what runs.
  lastUpdate.value = null;
  const first = await recordLastUpdate({ lastUpdate, clock }, { ...LAST, previousImageId: "" });
  assert.deepEqual(first.recentImageIds, ["sha256:2"]);
});

Deno.test("a recreate on the same image keeps the image before it as the rollback target, for this container only", async () => {
  const clock = new FakeClock(T0);
  const lastUpdate = new FakeLastUpdate();
  await recordLastUpdate({ lastUpdate, clock }, LAST);
  const forced = { ...LAST, id: "upd-3", previousImage: "reg/bot:2", previousImageId: "sha256:2" };
  let last = await recordLastUpdate({ lastUpdate, clock }, forced);
  assert.equal(last.previousImageId, "sha256:1");
  assert.equal(last.previousImage, "reg/bot:1");
  last = await recordLastUpdate({ lastUpdate, clock }, { ...forced, id: "upd-4" });
  assert.equal(last.previousImageId, "sha256:1", "again: the earlier record's previous image");
  assert.equal(last.previousImage, "reg/bot:1");
  // The bot was moved off the recorded image by other means: the recorded one is the target.
  lastUpdate.value = {
    ...last,
    image: "reg/bot:1",
    imageId: "sha256:1",
    previousImageId: "sha256:0",
  };
  last = await recordLastUpdate({ lastUpdate, clock }, { ...forced, id: "upd-7" });
  assert.equal(last.previousImageId, "sha256:1");
  assert.equal(last.previousImage, "reg/bot:1");
  // The earlier record was another container's: nothing of it is this one's rollback target.
  lastUpdate.value = { ...last, container: "other-bot" };
  last = await recordLastUpdate({ lastUpdate, clock }, { ...forced, id: "upd-5" });
  assert.equal(last.previousImageId, "sha256:2");
  // Every image recorded is the one forced: the target stays as given.
  lastUpdate.value = {
    ...last,
    container: "bot",
    imageId: "sha256:2",
    previousImageId: "sha256:2",
  };
  last = await recordLastUpdate({ lastUpdate, clock }, { ...forced, id: "upd-6" });
  assert.equal(last.previousImageId, "sha256:2");
});

function report(overrides: Partial<UpdateReport> = {}): UpdateReport {
  return {
    id: "upd-1",
    outcome: "rolled_back",
    container: "bot",
    image: "reg/bot:2",
    previousImage: "reg/bot:1",
    imageId: "sha256:1",
    previousImageId: "sha256:1",
    startedAt: "2026-11-29T12:00:00.000Z",
    finishedAt: "2026-11-29T12:00:30.000Z",
    durationMs: 30_000,
    downtimeMs: 1_200,
    error: "the new container failed: exit code 1",
    warnings: ["w"],
    steps: [{ name: "inspect", startedAt: "2026-11-29T12:00:00.000Z", ok: true }],
    ...overrides,
  };
}

Deno.test("the result reaches the history line even when the status file cannot be written, and the log says why", async () => {
  const status = new FakeStatus();
  status.write = () => Promise.reject(new Error("disk full"));
  const log = new MemoryLogger();
  await publishResult({ status }, report(), log);
  assert.equal(status.history.length, 1);
  assert.equal(status.history[0].state, "rolled_back");
  assert.deepEqual(log.lines, [{
    level: "error",
    message: "cannot write the status file",
    fields: { error: "disk full" },
  }]);
});

Deno.test("the status file is written even when the history cannot be appended, and the log says why", async () => {
  const status = new FakeStatus();
  status.appendHistory = () => Promise.reject(new Error("read-only"));
  const log = new MemoryLogger();
  await publishResult({ status }, report(), log);
  assert.deepEqual(status.current, statusOfReport(report()));
  assert.deepEqual(log.lines, [{
    level: "warn",
    message: "cannot append to history",
    fields: { error: "read-only" },
  }]);
});

Deno.test("the exit code of each outcome is the README's: 0 updated or unchanged, 1 rolled back or failed, 2 rejected", () => {
  const codes = Object.fromEntries(
    (["updated", "unchanged", "rolled_back", "failed", "rejected"] as const).map((o) => [
      o,
      exitCodeOfOutcome(o),
    ]),
  );
  assert.deepEqual(codes, { updated: 0, unchanged: 0, rolled_back: 1, failed: 1, rejected: 2 });
});

Deno.test("the status file's state names each outcome as the README lists them; an update is 'succeeded'", () => {
  const states = (["updated", "unchanged", "rolled_back", "failed", "rejected"] as const).map(
    stateOfOutcome,
  );
  assert.deepEqual(states, ["succeeded", "unchanged", "rolled_back", "failed", "rejected"]);
});

Deno.test("the steps of an update are named and ordered as the README documents them", () => {
  assert.deepEqual(
    [...STEPS],
    ["inspect", "pull", "compare", "create", "stop", "rename", "start", "verify", "cleanup"],
  );
});

Deno.test("the status file carries every field of the report the bot reads, and the request id only when there is one", () => {
  const withRequest = report({ requestId: "req-7" });
  const { previousImageId: _, logTail: __, outcome: ___, ...shared } = withRequest;
  assert.deepEqual(statusOfReport(withRequest), { ...shared, state: "rolled_back" });
  assert.equal("requestId" in statusOfReport(report()), false, "no empty requestId");
  assert.equal("requestId" in statusOfReport(report({ requestId: "" })), false);
});

Deno.test("the report of a journal takes what the update did from the journal and how it ended from the result", () => {
  const journal: JournalEntry = {
    id: "upd-1",
    requestId: "req-7",
    pid: 4242,
    startedAt: "2026-11-29T12:00:00.000Z",
    container: "bot",
    step: "verify",
    verified: false,
    image: "reg/bot:2",
    previousImage: "reg/bot:1",
    previousImageId: "sha256:1",
    oldContainerId: "old",
    oldWasRunning: true,
    oldRestartPolicy: null,
    newContainerId: "new",
    tempName: "bot-new",
    previousName: "bot-old",
    steps: report().steps,
  };
  const result = {
    outcome: "rolled_back" as const,
    imageId: "sha256:1",
    finishedAt: "2026-11-29T12:00:30.000Z",
    downtimeMs: 1_200,
    error: "the new container failed: exit code 1",
    warnings: ["w"],
  };
  assert.deepEqual(reportOfJournal(journal, result), report({ requestId: "req-7" }));
  const { requestId: _, ...unasked } = journal;
  assert.equal("requestId" in reportOfJournal(unasked, result), false);
});

Deno.test("an update's duration is never negative, even when the clock went back", () => {
  assert.equal(elapsedMs("2026-11-29T12:00:00.000Z", "2026-11-29T12:00:01.500Z"), 1_500);
  assert.equal(elapsedMs("2026-11-29T12:00:05.000Z", "2026-11-29T12:00:01.000Z"), 0);
});

Deno.test("the rollback target is the image the container really ran before, even when the record says otherwise", async () => {
  const clock = new FakeClock(T0);
  const lastUpdate = new FakeLastUpdate();
  // The record says 1 ran; someone moved the bot to 1.5 by hand since. The update to 2 goes
  // back to 1.5, what it replaced.
  await recordLastUpdate({ lastUpdate, clock }, {
    ...LAST,
    image: "reg/bot:1",
    imageId: "sha256:1",
  });
  const last = await recordLastUpdate({ lastUpdate, clock }, {
    ...LAST,
    previousImage: "reg/bot:1.5",
    previousImageId: "sha256:1.5",
  });
  assert.equal(last.previousImageId, "sha256:1.5");
  assert.equal(last.previousImage, "reg/bot:1.5");
});

Deno.test("a record read from disk without a previous image ID lists no empty ID", async () => {
  const clock = new FakeClock(T0);
  for (const missing of [null, undefined]) {
    const lastUpdate = new FakeLastUpdate();
    lastUpdate.value = {
      ...LAST,
      finishedAt: "",
      previousImageId: missing as unknown as string,
    };
    const last = await recordLastUpdate({ lastUpdate, clock }, {
      ...LAST,
      image: "reg/bot:3",
      imageId: "sha256:3",
    });
    assert.deepEqual(last.recentImageIds, ["sha256:3", "sha256:1", "sha256:2"], String(missing));
  }
});
