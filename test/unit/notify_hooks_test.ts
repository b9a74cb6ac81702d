/**
 * The hooks that tell notify what happened: Docker away for 5 minutes (once) and back (once),
 * an unfinished rollback (once per journal) and its completion, health's restarts (a failing
 * restart once until the watcher is well), trigger rejections through the watcher's status store.
 */

import assert from "node:assert/strict";
import { DockerOutage, OUTAGE_MS, watchDockerForNotify } from "../../lib/notify/docker_outage.ts";
import {
  notifyHealth,
  notifyingRecover,
  notifyingStatus,
  notifyUpdateEnded,
} from "../../lib/notify/hooks.ts";
import { Notifier } from "../../lib/notify/notifier.ts";
import { parseChannels } from "../../lib/notify/channels.ts";
import type { HealthReport } from "../../lib/health.ts";
import type { JournalEntry, StatusFile, UpdateReport } from "../../lib/update/report.ts";
import { MemoryLogger } from "../../lib/log.ts";
import { FakeClock, FakeJournal, FakeStatus } from "../fakes/state.ts";
import { MemoryNotifyState, MemoryOutbox } from "../fakes/notify.ts";

function setup(outcomes = ["updated", "rolled_back", "failed"] as UpdateReport["outcome"][]) {
  const outbox = new MemoryOutbox();
  const state = new MemoryNotifyState();
  const clock = new FakeClock();
  const sent: string[] = [];
  const notifier = new Notifier({
    http: {
      send: (req) => {
        sent.push(
          req.method === "POST" ? `POST ${JSON.parse(req.body!).event}` : `GET ${req.url}`,
        );
        return Promise.resolve({ status: 200, body: "OK" });
      },
    },
    outbox,
    state,
    clock,
    logger: new MemoryLogger(),
    host: "srv-1",
  }, {
    channels: parseChannels([{ type: "webhook", url: "https://hooks.example.com/h" }], "test"),
    language: "zh",
    outcomes,
    pingUrl: "https://hc-ping.com/uuid-1",
    container: "bot",
  });
  const events = () => [...outbox.entries.values()].map((e) => e.notification.event);
  return { notifier, outbox, state, clock, sent, events };
}

Deno.test("Docker unreachable is said once after 5 minutes, and once more when it answers again", () => {
  const o = new DockerOutage();
  const t0 = 1_000_000;
  const seen: (string | null)[] = [];
  for (let t = 0; t <= 10 * 60_000; t += 30_000) seen.push(o.observe(false, t0 + t)?.event ?? null);
  assert.deepEqual(seen.filter(Boolean), ["unreachable"]);
  assert.equal(seen.indexOf("unreachable"), OUTAGE_MS / 30_000);
  assert.equal(o.observe(true, t0 + 11 * 60_000)?.event, "reachable");
  assert.equal(o.observe(true, t0 + 12 * 60_000), null);
  // A short outage is never said at all, nor its end.
  assert.equal(o.observe(false, t0 + 13 * 60_000), null);
  assert.equal(o.observe(true, t0 + 14 * 60_000), null);
});

function report(outcome: UpdateReport["outcome"], id = "upd-1"): UpdateReport {
  return {
    id,
    outcome,
    container: "bot",
    image: "r/app:2",
    previousImage: "r/app:1",
    imageId: null,
    previousImageId: null,
    startedAt: "2026-11-29T12:00:00.000Z",
    finishedAt: "2026-11-29T12:00:10.000Z",
    durationMs: 10_000,
    downtimeMs: null,
    error: "rollback failed: Docker went away",
    warnings: [],
    steps: [],
  };
}

Deno.test("a rollback the journal still holds is notified once, and its completion by recovery after", async () => {
  const { notifier, state, events } = setup();
  const journal = new FakeJournal();
  journal.entry = { id: "upd-1", steps: [{ name: "stop" }] } as unknown as JournalEntry;
  await notifyUpdateEnded(notifier, journal, report("failed"));
  assert.deepEqual(events(), ["update", "rollback_unfinished"]);
  await notifier.rollbackUnfinished("upd-1", {});
  assert.deepEqual(events(), ["update", "rollback_unfinished"], "once per journal");
  assert.equal(state.state.unfinishedUpdate, "upd-1");
  await notifier.rollbackFinished(report("rolled_back"));
  assert.deepEqual(events(), ["update", "rollback_unfinished", "rollback_finished"]);
  assert.equal(state.state.unfinishedUpdate, null);
});

Deno.test("an unfinished rollback names the update's images, request and error, from the report or from the journal", async () => {
  const fields = (n: { notification: Record<string, unknown> } | undefined) => {
    const { container, image, previousImage, previousImageId, requestId, updateId, error } =
      n!.notification;
    return { container, image, previousImage, previousImageId, requestId, updateId, error };
  };
  const unfinished = (outbox: MemoryOutbox) =>
    [...outbox.entries.values()].find((e) => e.notification.event === "rollback_unfinished") as
      | { notification: Record<string, unknown> }
      | undefined;

  // The update itself ended with its rollback unfinished: the fields come from its report.
  const fromReport = setup();
  const journal = new FakeJournal();
  journal.entry = { id: "upd-1", steps: [{ name: "stop" }] } as unknown as JournalEntry;
  await notifyUpdateEnded(fromReport.notifier, journal, {
    ...report("failed"),
    previousImageId: "sha256:old",
    requestId: "req-7",
  });
  assert.deepEqual(fields(unfinished(fromReport.outbox)), {
    container: "bot",
    image: "r/app:2",
    previousImage: "r/app:1",
    previousImageId: "sha256:old",
    requestId: "req-7",
    updateId: "upd-1",
    error: "rollback failed: Docker went away",
  });

  // Recovery could not finish it (Docker away): the fields come from the journal.
  const fromJournal = setup();
  const left = new FakeJournal();
  left.entry = {
    id: "upd-2",
    container: "bot",
    image: "r/app:3",
    previousImage: "r/app:2",
    previousImageId: "sha256:two",
    steps: [{ name: "stop" }],
  } as unknown as JournalEntry;
  const recover = notifyingRecover(
    fromJournal.notifier,
    left,
    () => Promise.reject(new Error("connect ECONNREFUSED /var/run/docker.sock")),
  );
  await assert.rejects(recover(), /ECONNREFUSED/);
  for (let i = 0; i < 50 && !unfinished(fromJournal.outbox); i++) {
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.deepEqual(fields(unfinished(fromJournal.outbox)), {
    container: "bot",
    image: "r/app:3",
    previousImage: "r/app:2",
    previousImageId: "sha256:two",
    requestId: null,
    updateId: "upd-2",
    error: "connect ECONNREFUSED /var/run/docker.sock",
  });
});

Deno.test("an update whose journal is gone is no unfinished rollback", async () => {
  const { notifier, events } = setup();
  await notifyUpdateEnded(notifier, new FakeJournal(), report("failed"));
  assert.deepEqual(events(), ["update"]);
});

function health(attempted: boolean, succeeded: boolean | null, ok: boolean): HealthReport {
  return {
    ok,
    checkedAt: "2026-11-29T12:00:00.000Z",
    verdict: attempted ? "failed" : "ok",
    repair: { action: attempted ? "restart" : "none", attempted, succeeded, detail: "pid 7" },
  } as unknown as HealthReport;
}

Deno.test("health: a restart is notified; a failed one once until the watcher is well; the ping says ok or /fail", async () => {
  const { notifier, events, sent } = setup();
  await notifyHealth(notifier, health(true, false, false));
  await notifyHealth(notifier, health(true, false, false));
  assert.deepEqual(sent.filter((s) => s.startsWith("POST")), ["POST watcher_restart_failed"]);
  await notifyHealth(notifier, health(false, null, true));
  await notifyHealth(notifier, health(true, true, true));
  await notifyHealth(notifier, health(true, false, false));
  const all = sent.filter((s) => s.startsWith("GET"));
  assert.deepEqual(all, [
    "GET https://hc-ping.com/uuid-1/fail",
    "GET https://hc-ping.com/uuid-1/fail",
    "GET https://hc-ping.com/uuid-1",
    "GET https://hc-ping.com/uuid-1",
    "GET https://hc-ping.com/uuid-1/fail",
  ]);
  // Delivered within each run: nothing is left in the outbox.
  assert.deepEqual(sent.filter((s) => s.startsWith("POST")), [
    "POST watcher_restart_failed",
    "POST watcher_restarted",
    "POST watcher_restart_failed",
  ]);
  assert.deepEqual(events(), []);
});

Deno.test("the watcher's rejected triggers reach notify through its status store, when rejected is asked for", async () => {
  const status = new FakeStatus();
  const rejected = {
    id: "trg-1",
    state: "rejected",
    error: "bad\u001b[2J",
    image: null,
  } as unknown as StatusFile;
  const off = setup();
  await notifyingStatus(off.notifier, status).write(rejected);
  assert.deepEqual(off.events(), []);
  const on = setup(["rejected"]);
  await notifyingStatus(on.notifier, status).write(rejected);
  await new Promise((r) => setTimeout(r, 0));
  const [entry] = [...on.outbox.entries.values()];
  assert.equal(entry.notification.outcome, "rejected");
  assert.equal(entry.notification.error, "bad\\x1b[2J");
  assert.equal(status.current?.id, "trg-1", "the status file is written first");
});

Deno.test("the watcher's Docker watch pings on its period and sends unreachable once, then reachable", async () => {
  const { notifier, sent } = setup();
  const stop = new AbortController();
  let t = 0;
  let calls = 0;
  const ping = () => {
    calls++;
    if (calls === 20) stop.abort();
    // Away for the first 12 looks (a minute apart), then back.
    return calls <= 12 ? Promise.reject(new Error("connect ENOENT")) : Promise.resolve();
  };
  const deliver = setInterval(() => void notifier.deliverDue(), 1);
  try {
    await watchDockerForNotify(notifier, ping, stop.signal, 1, () => (t += 60_000));
    await notifier.deliverDue();
  } finally {
    clearInterval(deliver);
  }
  assert.deepEqual(sent, ["POST docker_unreachable", "POST docker_reachable"]);
});
