/**
 * Putting the containers in order after a failed or killed update (lib/update/rollback.ts,
 * lib/update/recover.ts, and verify.ts where they lean on it): one rule per test, each written
 * against a mutant `deno task mutation` left alive (mutation/triage-recover.md lists them).
 */

import assert from "node:assert/strict";
import { recoverFromJournal, recoverLocked } from "../../lib/update/recover.ts";
import { runUpdate, type UpdateDeps } from "../../lib/update/run.ts";
import { FakeLock } from "../fakes/state.ts";
import {
  BROKEN,
  config,
  killAt,
  settle,
  V1,
  V2,
  type World,
  world,
} from "../support/update_world.ts";

// ---- the old container removed by someone else ---------------------------------------------

Deno.test("when someone removed the old container before the swap, recovery gives the new one the bot's name, runs it, and ends the update", async () => {
  const w = await world();
  // Killed before the stop: the new container still has the temporary name and never ran.
  const restarted = await killAt(w, V2, "stop");
  const fresh = w.journal.entry!.newContainerId!;
  assert.equal(w.docker.peek(fresh)?.Name, "/bot-updating");
  await w.docker.removeContainer(w.oldId, { force: true });
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "failed");
  // The status file keeps only the error text: what happened and what to do are both in it.
  assert.equal(
    report?.error,
    "interrupted during step 'stop'; the old container was removed by someone else during the " +
      "update; the new one was kept running, 'bot' (check the bot with 'docker ps -a' and start " +
      "it by hand if needed)",
  );
  assert.equal(w.status.current?.state, "failed");
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.id, fresh, "the new container carries the bot's name");
  assert.ok(bot?.running, "and runs");
  assert.deepEqual(w.docker.containerNames(), ["bot"]);
  // Nothing is left to retry: a retry could only fail the same way, for ever.
  assert.equal(w.journal.entry, null);
  assert.equal(await recoverFromJournal(restarted, config()), null);
});

Deno.test("a rollback that finds the old container gone is not retried for ever: the update fails and the next one runs", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  const removeOld = w.docker.stopContainer.bind(w.docker);
  // Someone removes the old container while the update stops it.
  w.docker.stopContainer = async (id, options) => {
    await removeOld(id, options);
    if (id === w.oldId) await w.docker.removeContainer(id, { force: true });
  };
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  w.docker.stopContainer = removeOld;
  assert.equal(report.outcome, "failed");
  assert.match(
    report.error ?? "",
    /; rollback failed: the old container was removed by someone else during the update; the new one was kept running, 'bot' \(check the bot with 'docker ps -a'/,
  );
  assert.equal(w.journal.entry, null, "the journal is cleared: nothing is left to roll back to");
  const next = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(next.outcome, "updated", next.error ?? "");
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.imageRef, V2);
  assert.ok(bot?.running);
});

// ---- a journal that names the bot's container as the new one --------------------------------

Deno.test("a rollback never removes the bot's container when the journal names it as the new one", async () => {
  // A journal edited by hand (or damaged) so that the new container is the old one: removing
  // "the new container" would remove the only bot there is.
  const w = await world();
  const restarted = await killAt(w, V2, "create");
  w.journal.entry = { ...w.journal.entry!, newContainerId: w.oldId };
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "rolled_back", report?.error ?? "");
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.id, w.oldId, "the bot's container is still there");
  assert.ok(bot?.running);
  assert.equal(w.docker.callsTo("removeContainer").length, 0);
});

Deno.test("finishing a verified update never removes the bot's container when the journal names it as both", async () => {
  const w = await world();
  const restarted = await killAt(w, V2, "pull");
  w.journal.entry = {
    ...w.journal.entry!,
    step: "cleanup",
    verified: true,
    newContainerId: w.oldId,
  };
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "updated", report?.error ?? "");
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.id, w.oldId, "the bot's container is still there");
  assert.ok(bot?.running);
  assert.equal(w.docker.callsTo("removeContainer").length, 0);
  assert.equal(w.journal.entry, null);
});

// ---- two bots never trade side by side --------------------------------------------------------

Deno.test("recovery of a verified update removes the old container even when someone started it again", async () => {
  const w = await world();
  const restarted = await killAt(w, V2, "cleanup");
  const fresh = w.journal.entry!.newContainerId!;
  // Between the kill and the recovery the old container ran again (started by hand).
  await w.docker.startContainer(w.oldId);
  assert.ok(w.docker.peek(w.oldId)?.State.Running);
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "updated", report?.error ?? "");
  assert.equal(w.docker.peek(w.oldId), undefined, "the old container is removed, running or not");
  assert.deepEqual(w.docker.containerNames(), ["bot"]);
  assert.equal((await w.docker.inspectContainer("bot"))?.id, fresh);
  assert.equal(w.journal.entry, null, "the journal is cleared: nothing is left to finish");
});

// ---- the failed container's output --------------------------------------------------------

Deno.test("a failed container whose logs cannot be read gives the report and the log no invented output", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  w.docker.failNext("containerLogs", { status: 500, message: "logs are gone" });
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back", report.error ?? "");
  // The notification quotes report.logTail as the bot's last lines: none were read.
  assert.equal(report.logTail, undefined);
  const entry = w.logger.lines.find((l) =>
    l.message === "output of the new container before removal"
  );
  assert.equal(entry?.fields.logs, "(no output)");
});

// ---- a container that vanishes ------------------------------------------------------------

Deno.test("an update whose new container is removed as it starts rolls back, saying it disappeared", async () => {
  const w = await world();
  const start = w.docker.startContainer.bind(w.docker);
  w.docker.startContainer = async (id: string) => {
    await start(id);
    // Someone (or --rm on a process that ended) removes the new container at once.
    if (id === w.journal.entry?.newContainerId) await w.docker.removeContainer(id, { force: true });
  };
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "rolled_back", report.error ?? "");
  assert.match(report.error ?? "", /^the new container failed: the container disappeared$/);
  assert.equal(w.status.current?.state, "rolled_back");
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.id, w.oldId);
  assert.ok(bot?.running);
});

Deno.test("a rollback whose old container vanishes before its start fails with Docker's 'No such container' and keeps the journal", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  const inspect = w.docker.inspectContainer.bind(w.docker);
  let looks = 0;
  w.docker.inspectContainer = async (nameOrId: string) => {
    // The rollback's second look at the old container: someone removed it in between.
    if (nameOrId === w.oldId && w.journal.entry?.step === "rollback" && ++looks === 2) {
      await w.docker.removeContainer(w.oldId, { force: true });
    }
    return await inspect(nameOrId);
  };
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "failed");
  assert.match(report.error ?? "", /; rollback failed: No such container: /);
  assert.ok(w.journal.entry, "the journal keeps what is left to do");
});

// ---- the new container by its temporary name: the one-second boundary ----------------------

Deno.test("recovery counts a container by the temporary name made exactly one second before the update began as the update's", async () => {
  for (const [earlierMs, ours] of [[1_000, true], [1_001, false]] as const) {
    const w = await world();
    const restarted = await killAt(w, V2, "create");
    const startedAt = Date.parse(w.journal.entry!.startedAt);
    const now = w.docker.options.now;
    w.docker.options.now = () => new Date(startedAt - earlierMs);
    const made = await w.docker.runContainer("bot-updating", { Image: V1 });
    w.docker.options.now = now;
    const report = await recoverFromJournal(restarted, config());
    assert.equal(report?.outcome, "rolled_back", report?.error ?? "");
    assert.equal(
      w.docker.peek(made) === undefined,
      ours,
      `made ${earlierMs} ms before the start: ${ours ? "removed" : "left alone"}`,
    );
    assert.equal((await w.docker.inspectContainer("bot"))?.id, w.oldId);
  }
});

// ---- recovery (lib/update/recover.ts) --------------------------------------------------------

/**
 * Like killAt, but every step's start moves the clock by one second, so each step's times
 * differ: inspect T+0..1 s, pull 1..2, compare 2..3, create 3..4, stop 4..5, rename 5..6,
 * start 6..7, then verify.
 */
async function killTicking(w: World, image: string, step: string): Promise<UpdateDeps> {
  let reached = false;
  const deps: UpdateDeps = {
    ...w.deps,
    beforeStep: async (s) => {
      if (s === step) {
        reached = true;
        return new Promise<void>(() => {});
      }
      await w.clock.sleep(1_000);
    },
  };
  void runUpdate(deps, config(), { image, source: "trigger" });
  await settle(() => reached);
  return { ...w.deps, lock: new FakeLock() };
}

Deno.test("recovery with an empty journal returns null without taking the update lock", async () => {
  const w = await world();
  // An update holds the lock and has not written its journal yet: nothing to recover.
  w.deps.lock = new FakeLock();
  await w.deps.lock.acquire({ pid: 1, command: "update", since: w.clock.now().toISOString() });
  assert.equal(await recoverFromJournal(w.deps, config()), null);
  assert.equal(await recoverLocked(w.deps, config()), null);
});

Deno.test("recovery holds the update lock as 'recover' while it works, and releases it", async () => {
  const w = await world();
  const restarted = await killAt(w, V2, "start");
  const lock = restarted.lock as FakeLock;
  let holder: unknown = null;
  const inspect = w.docker.inspectContainer.bind(w.docker);
  w.docker.inspectContainer = (nameOrId: string) => {
    holder ??= structuredClone(lock.current);
    return inspect(nameOrId);
  };
  const since = w.clock.now().toISOString();
  await recoverFromJournal(restarted, config());
  assert.deepEqual(holder, { pid: 4242, command: "recover", since });
  assert.equal(lock.current, null, "released");
});

Deno.test("recovery from a kill before anything was touched fails with 'nothing was changed' and touches nothing", async () => {
  for (const step of ["inspect", "pull", "compare"]) {
    const w = await world();
    const restarted = await killAt(w, V2, step);
    const before = w.docker.calls.length;
    const report = await recoverFromJournal(restarted, config());
    assert.equal(report?.outcome, "failed", step);
    assert.equal(report?.error, `interrupted during step '${step}'; nothing was changed`);
    assert.deepEqual(
      w.docker.calls.slice(before).map((c) => c.method).filter((m) => m !== "inspectContainer"),
      [],
      `no container is touched after a kill at ${step}`,
    );
    assert.equal(w.journal.entry, null);
  }
});

Deno.test("recovery of a verified update reports it finished forward: times, downtime, the cleanup step and the record for --rollback", async () => {
  const w = await world();
  const restarted = await killTicking(w, V2, "cleanup");
  await w.clock.advance(5_000);
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "updated", report?.error ?? "");
  const now = w.clock.now().toISOString();
  assert.equal(report?.finishedAt, now);
  // Down when the old container's stop ended (T+5 s), up when the new one's start ended (T+7 s).
  assert.equal(report?.downtimeMs, 2_000);
  const last = report!.steps.at(-1)!;
  assert.deepEqual(last, { name: "cleanup", startedAt: now, finishedAt: now, ok: true });
  assert.equal(w.status.current?.state, "succeeded");
  const record = w.deps.lastUpdate;
  assert.deepEqual(
    { ...(await record.read()), finishedAt: undefined, recentImageIds: undefined },
    {
      id: w.journal.writes[0].id,
      container: "bot",
      image: V2,
      imageId: report!.imageId,
      previousImage: V1,
      previousImageId: report!.previousImageId,
      finishedAt: undefined,
      recentImageIds: undefined,
    },
  );
});

Deno.test("recovery after a kill mid-start counts the downtime until the old container runs again", async () => {
  const w = await world();
  const restarted = await killTicking(w, V2, "start");
  await w.clock.advance(5_000);
  const recoveredAt = w.clock.now().getTime();
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "rolled_back", report?.error ?? "");
  assert.equal(report?.error, `interrupted during step 'start'; rolled back to ${V1}`);
  // Down at the stop's end (T+5 s); up when recovery started the old one (T+6 s + 5 s).
  const startedAt = Date.parse(report!.startedAt);
  assert.equal(report?.downtimeMs, recoveredAt - (startedAt + 5_000));
  const last = report!.steps.at(-1)!;
  assert.equal(last.name, "rollback");
  assert.equal(last.ok, true);
});

Deno.test("recovery of a bot that was not running before reports no downtime", async () => {
  const w = await world();
  await w.docker.stopContainer(w.oldId);
  const restarted = await killTicking(w, V2, "cleanup");
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "updated", report?.error ?? "");
  assert.equal(report?.downtimeMs, 0);
});

Deno.test("recovery whose old container fails again reports failed, with the reason", async () => {
  const w = await world({ exitAfterStart: new Map([[V1, 3]]) });
  const restarted = await killAt(w, V2, "start");
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "failed");
  assert.match(
    report?.error ?? "",
    /^interrupted during step 'start'; rolled back to \S+:1, but the old container failed: the container is restarting \(restarts: \d+, exit code 3\)$/,
  );
  assert.equal(w.status.current?.state, "failed");
  assert.equal(w.journal.entry, null);
});

Deno.test("recovery warns when the journal was for another container than the config names", async () => {
  const w = await world();
  const restarted = await killAt(w, V2, "start");
  const same = await recoverFromJournal(restarted, config());
  assert.deepEqual(same?.warnings, []);

  const w2 = await world();
  const again = await killAt(w2, V2, "start");
  const report = await recoverFromJournal(again, config({ container: "other-bot" }));
  assert.deepEqual(report?.warnings, [
    "the journal was for container 'bot', the config names 'other-bot'",
  ]);
});
