/**
 * Putting the containers in order after a failed or killed update (lib/update/rollback.ts,
 * lib/update/recover.ts, and verify.ts where they lean on it): one rule per test, each written
 * against a mutant `deno task mutation` left alive (mutation/triage-recover.md lists them).
 */

import assert from "node:assert/strict";
import { UpdateFailedError } from "../../lib/errors.ts";
import { recoverFromJournal } from "../../lib/update/recover.ts";
import { runUpdate } from "../../lib/update/run.ts";
import { BROKEN, config, killAt, V1, V2, world } from "../support/update_world.ts";

// ---- the old container removed by someone else ---------------------------------------------

Deno.test("when someone removed the old container before the swap, recovery gives the new one the bot's name and runs it", async () => {
  const w = await world();
  // Killed before the stop: the new container still has the temporary name and never ran.
  const restarted = await killAt(w, V2, "stop");
  const fresh = w.journal.entry!.newContainerId!;
  assert.equal(w.docker.peek(fresh)?.Name, "/bot-updating");
  await w.docker.removeContainer(w.oldId, { force: true });
  await assert.rejects(recoverFromJournal(restarted, config()), (err: unknown) => {
    assert.ok(err instanceof UpdateFailedError, `expected UpdateFailedError, got ${err}`);
    assert.match(err.message, /removed by someone else during the update; the new one was kept/);
    // What main.ts prints for the operator: the container, and what to do next.
    assert.equal(err.object, "bot");
    assert.equal(err.hint, "check the bot with 'docker ps -a' and start it by hand if needed");
    return true;
  });
  const bot = await w.docker.inspectContainer("bot");
  assert.equal(bot?.id, fresh, "the new container carries the bot's name");
  assert.ok(bot?.running, "and runs");
  assert.deepEqual(w.docker.containerNames(), ["bot"]);
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
