/**
 * The README's promises about an update, each held by a test that fails when the promise is
 * broken (issue 13): the stable window after `healthy`, the graceful stop, a rollback Docker
 * interrupts, a missing or paused container, the failed container's last 50 log lines, and
 * recovery by the temporary name. The fake engine and the update share one FakeClock, so the
 * times the fake stamps (Created, StartedAt) are the update's times.
 */

import assert from "node:assert/strict";
import { RejectedError } from "../../lib/errors.ts";
import { recoverFromJournal } from "../../lib/update/recover.ts";
import { runUpdate, type UpdateDeps } from "../../lib/update/run.ts";
import { verifyContainer } from "../../lib/update/verify.ts";
import { FakeJournal, FakeLock } from "../fakes/state.ts";
import {
  BROKEN,
  config,
  killAt,
  settle,
  V1,
  V2,
  V2_HEALTHY,
  type World,
  world,
} from "../support/update_world.ts";

// ---- 1. healthy, and up for stableSeconds ------------------------------------------------

Deno.test("a container that is healthy at once is verified only after stableSeconds", async () => {
  const { docker, clock } = await world({}, V2_HEALTHY);
  docker.addImage(V2, V2_HEALTHY);
  const id = await docker.runContainer("probe", { Image: V2 });
  const start = clock.now().getTime();
  const verdict = await verifyContainer(docker, clock, id, {
    healthTimeoutSeconds: 60,
    stableSeconds: 10,
    pollMs: 250,
  });
  assert.ok(verdict.ok, JSON.stringify(verdict));
  const waited = clock.now().getTime() - start;
  assert.ok(waited >= 10_000, `verified after ${waited} ms, before the stable window ended`);
  assert.ok(waited < 11_000, `verified after ${waited} ms, long after the stable window`);
});

Deno.test("update rolls back a healthy container that exits within the stable window", async () => {
  const w = await world({}, V2_HEALTHY);
  let looks = 0;
  const inspect = w.docker.inspectContainer.bind(w.docker);
  w.docker.inspectContainer = async (nameOrId: string) => {
    const info = await inspect(nameOrId);
    // The new container is healthy from the first look and dies at the fifth (~1 s in).
    if (info?.imageRef === V2 && info.running && ++looks === 5) {
      w.docker.exitContainer(info.id, 3);
      return await inspect(nameOrId);
    }
    return info;
  };
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "rolled_back", report.error ?? "");
  assert.match(report.error ?? "", /exit(ed with)? code 3/);
  assert.equal((await w.docker.inspectContainer("bot"))?.id, w.oldId);
});

// ---- 2. the old container stops with its own signal and timeout --------------------------

Deno.test("update stops the old container with its own stop signal and timeout", async () => {
  const w = await world();
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  const stops = w.docker.callsTo("stopContainer").filter((args) => args[0] === w.oldId);
  // No signal or timeout of our own: the daemon applies the container's StopSignal and
  // StopTimeout (the contract suite shows the real engine and the fake both do).
  assert.deepEqual(stops, [[w.oldId, {}]]);
});

Deno.test("a rollback stops nothing by force: the old container comes back after its own stop", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back");
  assert.deepEqual(w.docker.lastStopOf(w.oldId), { signal: "SIGINT", timeoutSeconds: 42 });
});

// ---- 3. a rollback Docker interrupts keeps its journal and is retried --------------------

Deno.test("a rollback the Docker daemon interrupts keeps the journal, and recovery finishes it", async () => {
  // The old image cannot start while the daemon misbehaves: the rollback fails half-way.
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  w.docker.options.failStartOf = V1;
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "failed");
  assert.match(report.error ?? "", /rollback failed/);
  assert.ok(w.journal.entry, "the journal keeps what is left to do");
  assert.equal(w.journal.entry.finished, undefined, "and is not marked finished");
  assert.equal(w.status.current?.state, "failed");

  // While it still misbehaves, a retry fails the same way and the journal stays for the next.
  await assert.rejects(
    recoverFromJournal({ ...w.deps, lock: new FakeLock() }, config()),
    /cannot start|OCI runtime/,
  );
  assert.ok(w.journal.entry, "a retry that Docker interrupts keeps the journal too");
  assert.equal(w.status.current?.state, "failed");

  // The daemon is back: the retry (watch's rescan, or the next update) puts the old one back.
  w.docker.options.failStartOf = undefined;
  const retry = await recoverFromJournal({ ...w.deps, lock: new FakeLock() }, config());
  assert.equal(retry?.outcome, "rolled_back");
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.id, w.oldId);
  assert.ok(bot?.running);
  assert.equal(w.journal.entry, null);
});

// ---- 4. a missing container, a paused one ------------------------------------------------

Deno.test("a container that does not exist is refused with exit 2 and the status file left alone", async () => {
  const w = await world();
  await assert.rejects(
    runUpdate(w.deps, config({ container: "no-such-bot" }), { image: V2, source: "cli" }),
    (err: unknown) => {
      assert.ok(err instanceof RejectedError, `expected RejectedError, got ${err}`);
      assert.equal(err.exitCode, 2);
      assert.match(err.message, /container not found/);
      return true;
    },
  );
  assert.equal(w.status.current, null, "the status file is not written");
  assert.deepEqual(w.status.states, []);
  assert.equal(w.status.history.length, 0);
  assert.equal(w.journal.entry, null);
  assert.equal(w.docker.callsTo("pullImage").length, 0);
});

Deno.test("a paused container is refused, with exit 2, and nothing is touched", async () => {
  const w = await world();
  w.docker.peek("bot")!.State.Paused = true;
  await assert.rejects(
    runUpdate(w.deps, config(), { image: V2, source: "cli" }),
    (err: unknown) => {
      assert.ok(err instanceof RejectedError, `expected RejectedError, got ${err}`);
      assert.equal(err.exitCode, 2);
      assert.match(err.message, /paused/);
      return true;
    },
  );
  assert.equal(w.docker.callsTo("pullImage").length, 0);
  assert.equal(w.docker.callsTo("stopContainer").length, 0);
  assert.equal(w.status.current, null);
});

// ---- 5. the failed container's last 50 lines reach update.log ----------------------------

Deno.test("the failed container's last 50 log lines go to the update log", async () => {
  const lines = Array.from({ length: 80 }, (_, i) => `broken line ${i + 1}`);
  const w = await world({
    exitAfterStart: new Map([[BROKEN, 1]]),
    logsOf: new Map([[BROKEN, lines]]),
  });
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back");
  const entry = w.logger.lines.find((l) =>
    l.message === "output of the new container before removal"
  );
  assert.ok(entry, "the output is logged");
  assert.equal(entry.level, "error");
  assert.equal(entry.fields.logs, lines.slice(-50).join("\n"));
});

// ---- 10. recovery by the temporary name --------------------------------------------------

Deno.test("recovery finds the new container by its temporary name when a kill came before the journal recorded it", async () => {
  const w = await world();
  // The process dies right after the create: the journal write with the new ID never ends.
  const journal = new FakeJournal();
  const write = journal.write.bind(journal);
  let killed = false;
  journal.write = (entry) => {
    if (entry.newContainerId) {
      killed = true;
      return new Promise<void>(() => {});
    }
    return write(entry);
  };
  void runUpdate({ ...w.deps, journal }, config(), { image: V2, source: "trigger" });
  await settle(() => killed);
  assert.equal(journal.entry?.step, "create");
  assert.equal(journal.entry?.newContainerId, null);
  assert.deepEqual(w.docker.containerNames(), ["bot", "bot-updating"]);

  await w.clock.advance(5_000); // the restart takes a while
  const restarted: UpdateDeps = { ...w.deps, journal, lock: new FakeLock() };
  journal.write = write;
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "rolled_back", report?.error ?? "");
  assert.deepEqual(w.docker.containerNames(), ["bot"], "the half-made container is removed");
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.id, w.oldId);
  assert.ok(bot?.running);
});

Deno.test("recovery does not remove a container by the temporary name made before the update began", async () => {
  const w = await world();
  const journal = new FakeJournal();
  const write = journal.write.bind(journal);
  let killed = false;
  journal.write = (entry) => {
    if (entry.newContainerId) {
      killed = true;
      return new Promise<void>(() => {});
    }
    return write(entry);
  };
  void runUpdate({ ...w.deps, journal }, config(), { image: V2, source: "trigger" });
  await settle(() => killed);
  // Someone replaced the half-made container with an older one of their own under that name.
  const half = w.docker.peek("bot-updating")!;
  await w.docker.removeContainer(half.Id, { force: true });
  const now = w.docker.options.now;
  w.docker.options.now = () => new Date(w.clock.now().getTime() - 3_600_000); // made an hour ago
  const theirs = await w.docker.runContainer("bot-updating", { Image: V1 });
  w.docker.options.now = now;
  journal.write = write;
  await recoverFromJournal({ ...w.deps, journal, lock: new FakeLock() }, config());
  assert.equal(w.docker.peek("bot-updating")?.Id, theirs, "their container stays");
});

// ---- the wait for a stop in progress ------------------------------------------------------

Deno.test("recovery waits out a stop the daemon was still doing when the update was killed", async () => {
  // The kill came while the daemon stopped the old container: it still runs for a while.
  const w = await world({ stopLingers: new Map([[V1, 2]]) });
  void runUpdate(w.deps, config(), { image: V2, source: "trigger" });
  await settle(() => w.docker.callsTo("stopContainer").length === 1);
  assert.equal(w.journal.entry?.step, "stop");
  assert.ok(w.docker.peek(w.oldId)?.State.Running, "the stop is still in progress");

  const report = await recoverFromJournal({ ...w.deps, lock: new FakeLock() }, config());
  assert.equal(report?.outcome, "rolled_back", report?.error ?? "");
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.id, w.oldId);
  assert.ok(bot?.running, "the old container runs again after the stop ended");
});

// ---- putting the old container back: each rule (survivors of `deno task mutation`) --------

Deno.test("a rollback keeps a stopped bot stopped: it was not running before the update", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  await w.docker.stopContainer(w.oldId);
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back", report.error ?? "");
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.id, w.oldId);
  assert.equal(bot?.running, false, "not started by the rollback");
});

Deno.test("a rollback whose failed container's logs cannot be read still puts the old one back", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  w.docker.failNext("containerLogs", { status: 500, message: "logs are gone" });
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back", report.error ?? "");
  assert.ok((await w.docker.inspectContainer("bot"))?.running);
});

Deno.test("a rollback of a container without a restart policy needs none put back", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  delete w.docker.peek("bot")!.HostConfig.RestartPolicy;
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back", report.error ?? "");
  assert.ok((await w.docker.inspectContainer("bot"))?.running);
});

Deno.test("recovery from a kill before the stop never stops or restarts the running old container", async () => {
  const w = await world();
  const restarted = await killAt(w, V2, "create");
  const startedAt = w.docker.peek(w.oldId)!.State.StartedAt;
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "rolled_back", report?.error ?? "");
  assert.equal(w.docker.callsTo("stopContainer").length, 0, "the bot was never stopped");
  assert.equal(w.docker.peek(w.oldId)?.State.StartedAt, startedAt, "nor restarted");
});

Deno.test("recovery when the new container is gone before the rollback still puts the old one back", async () => {
  const w = await world();
  const restarted = await killAt(w, V2, "start");
  await w.docker.removeContainer(w.journal.entry!.newContainerId!, { force: true });
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "rolled_back", report?.error ?? "");
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.id, w.oldId);
  assert.ok(bot?.running);
});

Deno.test("recovery of a verified update whose new container is gone rolls back to the old one", async () => {
  const w = await world();
  const restarted = await killAt(w, V2, "cleanup");
  await w.docker.removeContainer(w.journal.entry!.newContainerId!, { force: true });
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "rolled_back", report?.error ?? "");
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.id, w.oldId);
  assert.ok(bot?.running);
});

Deno.test("recovery of a verified update whose new container stopped starts it again", async () => {
  const w = await world();
  const restarted = await killAt(w, V2, "cleanup");
  const fresh = w.journal.entry!.newContainerId!;
  await w.docker.stopContainer(fresh);
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "updated", report?.error ?? "");
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.id, fresh);
  assert.ok(bot?.running);
  assert.equal(w.docker.peek(w.oldId), undefined, "the old container is removed");
});

Deno.test("when someone removed the old container, recovery keeps the new one running under the bot's name", async () => {
  const w = await world();
  const restarted = await killAt(w, V2, "start");
  const fresh = w.journal.entry!.newContainerId!;
  await w.docker.removeContainer(w.oldId, { force: true });
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "failed");
  assert.match(
    report?.error ?? "",
    /removed by someone else during the update; the new one was kept running/,
  );
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.id, fresh);
  assert.ok(bot?.running, "the new container was started");
});

Deno.test("a rollback with nothing recorded to undo touches nothing", async () => {
  const w = await world();
  const { rollBackContainers } = await import("../../lib/update/rollback.ts");
  const journal = { ...(await killAndRead(w)), oldContainerId: null };
  const before = w.docker.calls.length;
  const verdict = await rollBackContainers(
    { docker: w.docker, clock: w.clock, logger: w.logger },
    journal,
    { healthTimeoutSeconds: 60, stableSeconds: 10 },
  );
  assert.deepEqual(verdict, { ok: true, detail: "nothing was changed" });
  assert.equal(w.docker.calls.length, before, "no Docker call");
});

/** The journal of an update killed at its pull step. */
async function killAndRead(w: World) {
  await killAt(w, V2, "pull");
  return structuredClone(w.journal.entry!);
}
