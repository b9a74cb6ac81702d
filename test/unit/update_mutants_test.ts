/**
 * The update run's promises that its surviving mutants showed no test held (issue 13,
 * `deno task mutation --group update`, lib/update/run.ts): usage errors, the lock holder, the
 * journal's record, names an update needs, `--rollback`'s checks, a tag that moves under the
 * update, cleanup that fails, the daemon that cannot be reached, credentials, the status file
 * while it runs. The fake engine and the update share one FakeClock.
 */

import assert from "node:assert/strict";
import {
  describeError,
  DockerError,
  RejectedError,
  UpdateFailedError,
  UsageError,
} from "../../lib/errors.ts";
import type { StatusFile } from "../../lib/update/report.ts";
import {
  allowedRepositories,
  isUnreachable,
  runUpdate,
  type UpdateDeps,
} from "../../lib/update/run.ts";
import type { FakeDockerOptions } from "../fakes/docker.ts";
import { FakeJournal } from "../fakes/state.ts";

import {
  BROKEN,
  config as sharedConfig,
  REPO,
  V1,
  V2,
  type World,
  world as sharedWorld,
} from "../support/update_world.ts";

/** This file's bot: a stable window of 2 s and 10 s for health (the shared world's 10 s and 60 s). */
function config(overrides: Record<string, unknown> = {}) {
  return sharedConfig({ stableSeconds: 2, healthTimeoutSeconds: 10, ...overrides });
}

/** The shared world, V2 started as "/bin/bot --v2" as this file's tests expect. */
function world(options: FakeDockerOptions = {}) {
  return sharedWorld(options, { Cmd: ["/bin/bot", "--v2"] });
}

async function bot(w: World) {
  const info = await w.docker.inspectContainer("bot");
  assert.ok(info, "the bot container exists");
  return info;
}

/** The bot untouched: the same container, running, nothing else named after it. */
async function assertUntouched(w: World) {
  const b = await bot(w);
  assert.equal(b.id, w.oldId, "the old container keeps the bot's name");
  assert.ok(b.running, "and runs");
  assert.deepEqual(w.docker.containerNames().filter((n) => n.startsWith("bot")), ["bot"]);
  assert.equal(w.docker.callsTo("stopContainer").length, 0, "nothing was stopped");
}

// ---- usage errors -------------------------------------------------------------------------

for (
  const [what, request, message, hint] of [
    [
      "an image",
      { image: V2, rollback: true },
      "--rollback takes no image",
      "it goes back to the image that ran before",
    ],
    [
      "--force",
      { rollback: true, force: true },
      "--rollback and --force exclude each other",
      "--rollback always recreates the container on the image that ran before",
    ],
  ] as const
) {
  Deno.test(`--rollback with ${what} is a usage error (exit 2) that takes no lock and touches nothing`, async () => {
    const w = await world();
    const err: unknown = await runUpdate(w.deps, config(), { ...request, source: "cli" }).then(
      () => null,
      (e) => e,
    );
    assert.ok(err instanceof UsageError, `expected UsageError, got ${err}`);
    assert.deepEqual(describeError(err), { message, hint, exitCode: 2 });
    assert.equal(w.docker.calls.length, 0, "no Docker call");
    assert.equal(w.lock.current, null);
    assert.deepEqual(w.status.states, []);
    assert.equal(w.journal.writes.length, 0);
  });
}

// ---- the lock holder and the journal's record --------------------------------------------

Deno.test("while an update runs, the lock names our pid, who asked and since when; it is released after", async () => {
  for (const source of ["cli", "trigger"] as const) {
    const w = await world();
    const seen: unknown[] = [];
    const deps: UpdateDeps = {
      ...w.deps,
      beforeStep: async (s) => {
        if (s === "stop") seen.push(await w.lock.holder());
      },
    };
    const report = await runUpdate(deps, config(), { image: V2, source });
    assert.equal(report.outcome, "updated", report.error ?? "");
    assert.deepEqual(seen, [{
      pid: 4242,
      command: `update (${source})`,
      since: report.startedAt,
    }]);
    assert.equal(w.lock.current, null, "released");
  }
});

Deno.test("the update's id is upd-<UTC time to the second>-<8 hex>, in the status file and the history", async () => {
  const w = await world();
  await w.clock.advance(Date.parse("2026-11-29T14:05:15.226Z") - w.clock.now().getTime());
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.match(report.id, /^upd-20261129140515-[0-9a-f]{8}$/);
  assert.equal(w.status.current?.id, report.id);
  assert.equal(w.status.history.at(-1)?.id, report.id);
  assert.equal(report.startedAt, "2026-11-29T14:05:15.226Z");
  const other = await runUpdate(w.deps, config(), { image: V1, source: "cli" });
  assert.notEqual(other.id, report.id, "two updates in the same second have different ids");
});

Deno.test("the caller's request id is echoed in the journal, every status write and the history; without one there is no requestId", async () => {
  const w = await world();
  const report = await runUpdate(w.deps, config(), {
    image: V2,
    requestId: "req-20261129-001",
    source: "trigger",
  });
  assert.equal(report.requestId, "req-20261129-001");
  assert.ok(w.journal.writes.length > 0);
  for (const j of w.journal.writes) assert.equal(j.requestId, "req-20261129-001");
  assert.equal(w.status.current?.requestId, "req-20261129-001");
  assert.equal(w.status.history.at(-1)?.requestId, "req-20261129-001");

  const plain = await runUpdate(w.deps, config(), { image: V1, source: "cli" });
  assert.ok(!("requestId" in plain), "no requestId key in the report");
  assert.ok(!("requestId" in w.status.current!), "nor in the status file");
});

Deno.test("the journal records, before the first step runs, who runs the update and what it swaps", async () => {
  const w = await world();
  await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  const first = w.journal.writes[0];
  assert.equal(first.step, "inspect");
  assert.equal(first.pid, 4242);
  assert.equal(first.container, "bot");
  assert.equal(first.image, V2, "the image asked for");
  assert.equal(first.verified, false);
  assert.equal(first.tempName, "bot-updating");
  assert.equal(first.previousName, "bot-previous");
  assert.equal(first.oldContainerId, null, "nothing looked at yet");
  assert.equal(first.newContainerId, null);
  assert.equal(first.startedAt, w.status.history.at(-1)?.startedAt);
  // From the stop on, the journal knows everything recovery needs.
  const stop = w.journal.writes.find((j) => j.step === "stop");
  assert.ok(stop);
  assert.equal(stop.oldContainerId, w.oldId);
  assert.equal(stop.oldWasRunning, true);
  assert.deepEqual(stop.oldRestartPolicy, { Name: "unless-stopped" });
  assert.equal(stop.previousImage, V1);
  assert.ok(stop.newContainerId);
  assert.deepEqual(stop.steps.map((s) => s.name), ["inspect", "pull", "compare", "create", "stop"]);
});

// ---- the names an update needs -------------------------------------------------------------

for (const taken of ["bot-updating", "bot-previous"]) {
  Deno.test(`a container already named ${taken} fails the update before anything is touched, and stays`, async () => {
    const w = await world();
    const theirs = await w.docker.runContainer(taken, { Image: V1 });
    const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
    assert.equal(report.outcome, "failed");
    assert.equal(
      report.error,
      `a container already has the name an update needs, '${taken}' ` +
        `(look at it with 'docker inspect ${taken}' and remove it if it is not needed)`,
    );
    assert.equal(w.status.current?.state, "failed");
    assert.equal(w.docker.callsTo("pullImage").length, 0, "nothing pulled");
    assert.equal(w.docker.callsTo("createContainer").length, 0);
    assert.equal(w.docker.peek(taken)?.Id, theirs, "their container is left alone");
    const b = await bot(w);
    assert.equal(b.id, w.oldId);
    assert.ok(b.running);
    assert.equal(w.journal.entry, null);
  });
}

Deno.test("a crash-looping bot is not refused: the update replaces it", async () => {
  const w = await world({ crashLoop: V1 });
  assert.ok((await bot(w)).restarting, "the old bot restarts over and over");
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  const b = await bot(w);
  assert.equal(b.imageRef, V2);
  assert.ok(b.running);
});

// ---- --rollback's checks -------------------------------------------------------------------

Deno.test("--rollback whose previous image was removed fails, names it, and touches nothing", async () => {
  const w = await world();
  const v1Id = (await bot(w)).imageId;
  assert.equal(
    (await runUpdate(w.deps, config(), { image: V2, source: "cli" })).outcome,
    "updated",
  );
  const running = await bot(w);
  w.docker.images.delete(v1Id);
  const report = await runUpdate(w.deps, config(), { rollback: true, source: "cli" });
  assert.equal(report.outcome, "failed");
  // The hint reaches the report (the status file and `update` have no other place for it).
  assert.equal(
    report.error,
    `the previous image is no longer present, '${V1} (${v1Id})' ` +
      `(pull it and run 'hyperbot-ops update ${V1}')`,
  );
  assert.equal((await bot(w)).id, running.id, "the bot is not recreated");
  assert.equal(w.docker.callsTo("createContainer").length, 1, "only the first update created");
  assert.equal(w.docker.callsTo("pullImage").length, 1, "--rollback pulls nothing");
});

/** The bot ran the repository's default tag, named without one (image v1Id), and was updated to V2. */
async function untaggedBotUpdatedToV2() {
  const w = await world();
  await w.docker.removeContainer(w.oldId, { force: true });
  const v1Id = w.docker.addImage(REPO, { Cmd: ["/bin/bot", "--untagged"] });
  await w.docker.runContainer("bot", { Image: REPO });
  assert.equal(
    (await runUpdate(w.deps, config(), { image: V2, source: "cli" })).outcome,
    "updated",
  );
  return { w, v1Id };
}

Deno.test("--rollback to an untagged image whose name now means another image fails and touches nothing", async () => {
  const { w, v1Id } = await untaggedBotUpdatedToV2();
  // A new build under the same name arrives on the host.
  w.docker.publishImage(REPO, { Cmd: ["/bin/bot", "--rebuilt"] });
  await w.docker.pullImage(REPO);
  assert.notEqual((await w.docker.inspectImage(REPO))?.id, v1Id);
  const running = await bot(w);
  const report = await runUpdate(w.deps, config(), { rollback: true, source: "cli" });
  assert.equal(report.outcome, "failed");
  assert.equal(
    report.error,
    `the previous image's name now means another image, '${REPO}' ` +
      "(run 'hyperbot-ops update <image>' with the version to go back to)",
  );
  assert.equal((await bot(w)).id, running.id);
  assert.equal(w.docker.callsTo("tagImage").length, 0, "no tag is moved for a name without one");
});

Deno.test("--rollback is not held to allowedImages: it goes back to the image that ran before", async () => {
  const w = await world();
  const OTHER = "registry.example.com/org/bot-next:1";
  w.docker.publishImage(OTHER, { Cmd: ["/bin/next"] });
  const v1Id = (await bot(w)).imageId;
  const moved = await runUpdate(w.deps, config({ allowedImages: [REPO, OTHER.split(":")[0]] }), {
    image: OTHER,
    source: "cli",
  });
  assert.equal(moved.outcome, "updated", moved.error ?? "");
  // Without allowedImages only the running image's repository may be deployed: not REPO.
  await assert.rejects(
    runUpdate(w.deps, config(), { image: V2, source: "cli" }),
    RejectedError,
  );
  const back = await runUpdate(w.deps, config(), { rollback: true, source: "cli" });
  assert.equal(back.outcome, "updated", back.error ?? "");
  assert.equal((await bot(w)).imageId, v1Id);
});

// ---- the image between the pull and the create ----------------------------------------------

Deno.test("an image missing after a pull that succeeded fails the update with the bot untouched", async () => {
  const w = await world();
  const inspectImage = w.docker.inspectImage.bind(w.docker);
  w.docker.inspectImage = (ref) => ref === V2 ? Promise.resolve(null) : inspectImage(ref);
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "failed");
  assert.equal(report.error, `the image is not present after the pull, '${V2}'`);
  const compare = report.steps.at(-1);
  assert.equal(compare?.name, "compare");
  assert.equal(compare?.ok, false);
  await assertUntouched(w);
  assert.equal(w.docker.callsTo("createContainer").length, 0);
});

Deno.test("a tag that moves between the compare and the create fails the update; the new container is removed and the bot untouched", async () => {
  const w = await world();
  const deps: UpdateDeps = {
    ...w.deps,
    beforeStep: async (s) => {
      if (s !== "create") return;
      // Another pull of the same tag lands meanwhile.
      w.docker.publishImage(V2, { Cmd: ["/bin/bot", "--v2.1"] });
      await w.docker.pullImage(V2);
    },
  };
  const report = await runUpdate(deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "failed");
  assert.equal(report.error, `the image changed during the update; run it again, '${V2}'`);
  assert.equal(report.steps.at(-1)?.name, "create");
  assert.equal(report.steps.at(-1)?.ok, false);
  await assertUntouched(w);
  assert.equal(w.journal.entry, null);
});

Deno.test("a new container that cannot be removed after a failed create still ends in a failed report", async () => {
  const w = await world();
  const deps: UpdateDeps = {
    ...w.deps,
    beforeStep: async (s) => {
      if (s !== "create") return;
      w.docker.publishImage(V2, { Cmd: ["/bin/bot", "--v2.1"] });
      await w.docker.pullImage(V2);
      w.docker.failNext("removeContainer", { status: 500, message: "device or resource busy" });
    },
  };
  const report = await runUpdate(deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "failed");
  assert.match(report.error ?? "", /the image changed during the update/);
  assert.equal(w.status.current?.state, "failed");
  const line = w.logger.lines.find((l) => l.message === "could not remove the new container");
  assert.equal(line?.level, "error");
  assert.match(String(line?.fields.error), /device or resource busy/);
  assert.equal((await bot(w)).id, w.oldId);
});

// ---- cleanup -------------------------------------------------------------------------------

Deno.test("a cleanup that fails leaves the update succeeded with a warning, and the journal for recovery to finish", async () => {
  const w = await world();
  const deps: UpdateDeps = {
    ...w.deps,
    beforeStep: (s) => {
      if (s === "cleanup") {
        w.docker.failNext("removeContainer", { status: 500, message: "removal in progress" });
      }
    },
  };
  const report = await runUpdate(deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  assert.equal(report.error, null);
  assert.deepEqual(report.warnings, ["cleanup did not complete: removal in progress"]);
  assert.equal(w.status.current?.state, "succeeded");
  assert.deepEqual(w.status.current?.warnings, report.warnings);
  assert.equal((await bot(w)).imageRef, V2);
  assert.ok(w.journal.entry, "the journal stays");
  assert.equal(w.journal.entry.verified, true, "recovery goes forward");
  assert.equal(w.journal.entry.finished, undefined);
  assert.ok(w.docker.peek(w.oldId), "the old container is still there");

  // The next update finishes what was left: the old container goes.
  const next = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(next.outcome, "unchanged");
  assert.equal(w.docker.peek(w.oldId), undefined);
  assert.equal(w.journal.entry, null);
});

Deno.test("old images that cannot be removed are a warning; the update succeeded", async () => {
  const w = await world();
  w.docker.failNext("removeImage", { status: 500, message: "image store locked" });
  const report = await runUpdate(w.deps, config({ keepImages: 1 }), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  assert.deepEqual(report.warnings, ["could not remove old images: image store locked"]);
  assert.equal(w.journal.entry, null, "the update ended");
});

Deno.test("an image removed by keepImages leaves the list of deployed images", async () => {
  const w = await world();
  const v1Id = (await bot(w)).imageId;
  const report = await runUpdate(w.deps, config({ keepImages: 1 }), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  assert.equal(await w.docker.inspectImage(v1Id), null, "1 is removed");
  assert.deepEqual(w.lastUpdate.value?.recentImageIds, [report.imageId]);
  assert.equal(w.lastUpdate.value?.previousImageId, v1Id, "the record still says what ran before");
});

// ---- the daemon that cannot be reached, credentials ------------------------------------------

Deno.test("a daemon lost after the first look is a failed update (exit 1), not a refusal", async () => {
  const w = await world();
  const deps: UpdateDeps = {
    ...w.deps,
    beforeStep: (s) => {
      if (s === "pull") w.docker.options.unreachable = true;
    },
  };
  const report = await runUpdate(deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "failed");
  assert.match(report.error ?? "", /cannot reach the Docker daemon/);
  assert.equal(w.status.current?.state, "failed");
  assert.equal(w.status.history.length, 1);
  assert.equal(w.journal.entry, null);
});

Deno.test("a daemon that answers the first look with an error is a failed update, not 'unreachable'", async () => {
  const w = await world();
  w.docker.failNext("inspectContainer", { status: 500, message: "cannot connect to containerd" });
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "failed");
  assert.match(report.error ?? "", /cannot connect to containerd/);
  assert.equal(w.status.current?.state, "failed");
});

Deno.test("isUnreachable: a Docker error without an HTTP answer that says reach, connect or socket", () => {
  for (
    const message of [
      "cannot reach the Docker daemon",
      "Cannot CONNECT to the Docker daemon at unix:///var/run/docker.sock",
      "dial unix: socket closed",
    ]
  ) {
    assert.ok(isUnreachable(new DockerError(message)), message);
    assert.ok(!isUnreachable(new DockerError(message, { status: 500 })), `${message} (500)`);
    assert.ok(!isUnreachable(new UpdateFailedError(message)), `${message} (not Docker's)`);
  }
  assert.ok(!isUnreachable(new DockerError("no space left on device")));
});

for (
  const message of [
    "unauthorized: authentication required",
    "Head https://registry.example.com/v2/org/bot/manifests/2: UNAUTHORIZED",
    "authentication required",
    "no basic auth credentials",
    "pull access denied for org/bot, repository does not exist",
  ]
) {
  Deno.test(`a pull refused with '${message}' says where credentials were looked for and how to log in`, async () => {
    const w = await world();
    w.docker.failNext("pullImage", { status: 500, message });
    const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
    assert.equal(report.outcome, "failed");
    assert.equal(
      report.error,
      `${message} (credentials for registry.example.com: none in the Docker config file; ` +
        `log in as root with 'docker login registry.example.com', or set DOCKER_CONFIG to the ` +
        `folder whose config.json holds them)`,
    );
    await assertUntouched(w);
  });
}

Deno.test("a refused pull with credentials found says they were found", async () => {
  const w = await world();
  w.docker.failNext("pullImage", { status: 500, message: "unauthorized: incorrect username" });
  const deps: UpdateDeps = {
    ...w.deps,
    credentials: {
      lookup: () =>
        Promise.resolve({
          username: "ci",
          password: "secret",
          serveraddress: "registry.example.com",
        }),
      configFile: "/root/.docker/config.json",
    },
  };
  const report = await runUpdate(deps, config(), { image: V2, source: "cli" });
  assert.match(
    report.error ?? "",
    /\(credentials for registry\.example\.com: found in \/root\/\.docker\/config\.json;/,
  );
  assert.ok(!(report.error ?? "").includes("secret"), "the password is never shown");
});

Deno.test("a pull that fails for another reason is reported as the daemon said, without login advice", async () => {
  const w = await world();
  w.docker.failNext("pullImage", { status: 404, message: "manifest unknown" });
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "failed");
  assert.equal(report.error, "manifest unknown");
  const w2 = await world();
  // Not the daemon's answer at all (a bug, a broken stream): passed on as it is.
  w2.docker.pullImage = () => Promise.reject(new Error("stream ended: access denied"));
  const other = await runUpdate(w2.deps, config(), { image: V2, source: "cli" });
  assert.equal(other.outcome, "failed");
  assert.equal(other.error, "stream ended: access denied");
});

// ---- the status file while the update runs, and the journal's writes ------------------------

Deno.test("while the update runs, the status file says so: no finish time, duration, downtime or error yet", async () => {
  const w = await world();
  const written: StatusFile[] = [];
  const write = w.status.write.bind(w.status);
  w.status.write = (s) => {
    written.push(structuredClone(s));
    return write(s);
  };
  const oldImageId = (await bot(w)).imageId;
  // Time passes so that a duration or downtime would show.
  const deps: UpdateDeps = { ...w.deps, beforeStep: () => w.clock.advance(1_000) };
  const report = await runUpdate(deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  const progress = written.slice(0, -1);
  assert.deepEqual(progress.map((s) => s.state), [
    "pulling",
    "creating",
    "stopping",
    "starting",
    "verifying",
  ]);
  for (const s of progress) {
    assert.equal(s.finishedAt, null, s.state);
    assert.equal(s.durationMs, null, s.state);
    assert.equal(s.downtimeMs, null, s.state);
    assert.equal(s.error, null, s.state);
  }
  assert.equal(progress[0].imageId, oldImageId, "while pulling, the bot runs the old image");
  assert.equal(progress[1].imageId, report.imageId, "from the compare on, the new one");
  assert.ok(report.durationMs > 0);
});

Deno.test("a status file that cannot be written while the update runs does not stop the update", async () => {
  const w = await world();
  const write = w.status.write.bind(w.status);
  w.status.write = (s) =>
    s.finishedAt === null ? Promise.reject(new Error("data folder is read-only")) : write(s);
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  assert.equal(w.status.current?.state, "succeeded");
  const warned = w.logger.lines.filter((l) => l.message === "cannot write the status file");
  assert.equal(warned.length, 5, "one warning per progress state");
  assert.equal(warned[0].level, "warn");
});

Deno.test("a step whose journal entry cannot be written does not run: the bot is never stopped unjournaled", async () => {
  const w = await world();
  const journal = new FakeJournal();
  const write = journal.write.bind(journal);
  let failed = false;
  journal.write = (entry) => {
    if (entry.step === "stop" && !failed) {
      failed = true;
      return Promise.reject(new Error("No space left on device"));
    }
    return write(entry);
  };
  const report = await runUpdate({ ...w.deps, journal }, config(), { image: V2, source: "cli" });
  assert.ok(failed);
  assert.equal(report.outcome, "rolled_back", report.error ?? "");
  assert.match(report.error ?? "", /No space left on device/);
  const stops = w.docker.callsTo("stopContainer").filter((args) => args[0] === w.oldId);
  assert.deepEqual(stops, [], "the old container was never stopped");
  assert.deepEqual(w.docker.callsTo("setRestartPolicy"), [], "nor its restart policy changed");
  await assertUntouched(w);
});

Deno.test("the journal is marked finished only once the containers are final; a failed mark does not fail the update", async () => {
  const w = await world();
  const journal = new FakeJournal();
  const write = journal.write.bind(journal);
  journal.write = (entry) => entry.finished ? Promise.reject(new Error("disk full")) : write(entry);
  const report = await runUpdate({ ...w.deps, journal }, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  assert.equal(journal.entry, null, "the journal is cleared all the same");
  const line = w.logger.lines.find((l) => l.message === "cannot mark the journal finished");
  assert.equal(line?.level, "warn");
  assert.equal(w.status.current?.state, "succeeded");
});

// ---- after a rollback -------------------------------------------------------------------------

Deno.test("a rolled-back update reports the failed container's last 10 non-empty output lines", async () => {
  const lines = Array.from({ length: 40 }, (_, i) => i % 4 === 0 ? "   " : `line ${i}`);
  const w = await world({
    exitAfterStart: new Map([[BROKEN, 1]]),
    logsOf: new Map([[BROKEN, lines]]),
  });
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back");
  assert.deepEqual(report.logTail, lines.filter((l) => l.trim() !== "").slice(-10));
  const ok = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(ok.outcome, "updated");
  assert.ok(!("logTail" in ok), "no logTail when no container failed");
});

Deno.test("a rollback of an old container that was not running counts no downtime", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  await w.docker.stopContainer(w.oldId);
  const deps: UpdateDeps = { ...w.deps, beforeStep: () => w.clock.advance(1_000) };
  const report = await runUpdate(deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back", report.error ?? "");
  assert.equal(report.downtimeMs, 0, "the bot was not running before: nothing was taken down");
});

// ---- which images may be deployed -------------------------------------------------------------

Deno.test("allowedRepositories: the configured list, else the running image's repository, else none", () => {
  assert.deepEqual(allowedRepositories(config({ allowedImages: ["ghcr.io/org/app"] }), V1), [
    "ghcr.io/org/app",
  ]);
  assert.deepEqual(allowedRepositories(config(), V1), [REPO]);
  assert.deepEqual(allowedRepositories(config(), "sha256:not a reference"), []);
});

Deno.test("an update without an image of a container whose image reference cannot be parsed asks for one", async () => {
  const w = await world();
  w.docker.peek("bot")!.Config.Image = "";
  const report = await runUpdate(w.deps, config(), { source: "cli" });
  assert.equal(report.outcome, "failed");
  assert.match(
    report.error ?? "",
    /^the container's image reference cannot be parsed; name an image: invalid image reference/,
  );
  assert.equal(w.docker.callsTo("pullImage").length, 0);
  await assertUntouched(w);
});

// ---- refusals: the message, the object and the hint main.ts prints ---------------------------

/** The error runUpdate threw, as main.ts prints it. */
async function refusal(
  w: World,
  cfg: ReturnType<typeof config>,
  request: Parameters<typeof runUpdate>[2],
) {
  const err: unknown = await runUpdate(w.deps, cfg, request).then(() => null, (e) => e);
  assert.ok(err, "runUpdate threw");
  return { err, ...describeError(err) };
}

Deno.test("a container that does not exist is refused naming the setting and how to list containers", async () => {
  const w = await world();
  const { message, hint, exitCode } = await refusal(w, config({ container: "bto" }), {
    image: V2,
    source: "cli",
  });
  assert.equal(message, "container not found, 'bto'");
  assert.equal(hint, "check the `container` setting; `docker ps -a` lists the containers");
  assert.equal(exitCode, 2);
});

Deno.test("a container that cannot be recreated faithfully is refused with every reason, naming it", async () => {
  const w = await world();
  await w.docker.runContainer("rmbot", { Image: V1, HostConfig: { AutoRemove: true } });
  w.docker.peek("rmbot")!.State.Paused = true;
  const { err, message, exitCode } = await refusal(w, config({ container: "rmbot" }), {
    image: V2,
    source: "cli",
  });
  assert.ok(err instanceof RejectedError);
  assert.equal(
    message,
    "cannot recreate the container faithfully: it was started with --rm: stopping it would " +
      "delete it, so it could not be rolled back; it is paused; unpause it first, 'rmbot'",
  );
  assert.equal(exitCode, 2);
  assert.deepEqual(w.status.states, []);
  assert.equal(w.journal.entry, null);
});

Deno.test("--no-pull of an image not on this host names it and says how to get it there", async () => {
  const w = await world();
  const { message, hint, exitCode } = await refusal(w, config(), {
    image: V2,
    noPull: true,
    source: "cli",
  });
  assert.equal(message, `the image is not on this host (--no-pull), '${V2}'`);
  assert.equal(
    hint,
    "load or build it first ('docker images' lists them), or update without --no-pull",
  );
  assert.equal(exitCode, 2);
});

Deno.test("--rollback with nothing recorded says what it goes back to and how to run another version", async () => {
  const w = await world();
  const { message, hint, exitCode } = await refusal(w, config(), {
    rollback: true,
    source: "cli",
  });
  assert.equal(message, "nothing to roll back to: no successful update of 'bot' is recorded");
  assert.equal(
    hint,
    "--rollback goes back to the image that ran before the last successful update; " +
      "to run another version: 'hyperbot-ops update <image>'",
  );
  assert.equal(exitCode, 1);
});

Deno.test("--rollback goes by this container's record only, never another container's", async () => {
  const w = await world();
  assert.equal(
    (await runUpdate(w.deps, config(), { image: V2, source: "cli" })).outcome,
    "updated",
  );
  w.lastUpdate.value = { ...w.lastUpdate.value!, container: "other-bot" };
  const { message } = await refusal(w, config(), { rollback: true, source: "cli" });
  assert.equal(message, "nothing to roll back to: no successful update of 'bot' is recorded");
  assert.equal((await bot(w)).imageRef, V2);
});

Deno.test("--rollback to the image the bot already runs names it, its ID, and how to run another", async () => {
  const w = await world();
  const v1Id = (await bot(w)).imageId;
  const forced = await runUpdate(w.deps, config(), { image: V1, force: true, source: "cli" });
  assert.equal(forced.outcome, "updated", forced.error ?? "");
  const { message, hint, exitCode } = await refusal(w, config(), {
    rollback: true,
    source: "cli",
  });
  assert.equal(
    message,
    `nothing to roll back to: 'bot' already runs ${V1} (${v1Id.slice(0, 19)}), ` +
      "the image from before the last update",
  );
  assert.equal(hint, "to run another version: 'hyperbot-ops update <image>'");
  assert.equal(exitCode, 1);
});

// ---- what the report says -------------------------------------------------------------------

Deno.test("an update without an image reports the tag it re-pulled as its image", async () => {
  const w = await world();
  w.docker.publishImage(V1, { Cmd: ["/bin/bot", "--rebuilt"] });
  const report = await runUpdate(w.deps, config(), { source: "trigger" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  assert.equal(report.image, V1);
  assert.equal(w.status.current?.image, V1);
  assert.equal(w.lastUpdate.value?.image, V1);
});

Deno.test("a failed update whose images cannot be pruned still ends rolled back, with a warning in update.log", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  w.lastUpdate.read = () => Promise.reject(new Error("last-update.json is corrupt"));
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back", report.error ?? "");
  const line = w.logger.lines.find((l) =>
    l.message === "could not remove the images of failed updates"
  );
  assert.equal(line?.level, "warn");
  assert.equal(w.journal.entry, null);
  assert.equal(w.status.current?.state, "rolled_back");
});

Deno.test("the pull uses the credentials found for the registry and reports its progress", async () => {
  const w = await world();
  const auth = { username: "ci", password: "secret", serveraddress: "registry.example.com" };
  const progress: string[] = [];
  const deps: UpdateDeps = {
    ...w.deps,
    credentials: {
      lookup: (host) => Promise.resolve(host === "registry.example.com" ? auth : null),
    },
    onPullProgress: (p) => progress.push(p.status),
  };
  const report = await runUpdate(deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  assert.deepEqual(w.docker.callsTo("pullImage"), [[V2, { auth }]]);
  assert.ok(progress.some((s) => s.startsWith("Digest: ")), progress.join(" | "));
});

Deno.test("an update whose old image is gone from the host still recreates the container", async () => {
  const w = await world();
  const v1Id = (await bot(w)).imageId;
  const inspectImage = w.docker.inspectImage.bind(w.docker);
  w.docker.inspectImage = (ref) => ref === v1Id ? Promise.resolve(null) : inspectImage(ref);
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  assert.equal((await bot(w)).imageRef, V2);
});

Deno.test("--rollback to an untagged image whose name still means it goes back", async () => {
  const { w, v1Id } = await untaggedBotUpdatedToV2();
  const back = await runUpdate(w.deps, config(), { rollback: true, source: "cli" });
  assert.equal(back.outcome, "updated", back.error ?? "");
  assert.equal((await bot(w)).imageId, v1Id);
});

Deno.test("--rollback to a previous image whose tag was removed puts the tag back and runs it by name", async () => {
  const w = await world();
  const v1Id = (await bot(w)).imageId;
  assert.equal(
    (await runUpdate(w.deps, config(), { image: V2, source: "cli" })).outcome,
    "updated",
  );
  w.docker.images.get(v1Id)!.repoTags = [];
  w.docker.images.get(v1Id)!.repoDigests = [];
  const back = await runUpdate(w.deps, config(), { rollback: true, source: "cli" });
  assert.equal(back.outcome, "updated", back.error ?? "");
  const b = await bot(w);
  assert.equal(b.imageId, v1Id);
  assert.equal(b.imageRef, V1);
});

// ---- the images of failed updates (keepImages) -------------------------------------------------

Deno.test("the image of a rolled-back or failed update is remembered for keepImages; a success, a failed pull or a kept journal adds none", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  assert.equal(
    (await runUpdate(w.deps, config(), { image: V2, source: "cli" })).outcome,
    "updated",
  );
  assert.equal(w.failedImages.value, null, "a success lists nothing");
  w.docker.options.failPull = new Map([[`${REPO}:gone`, "not_found"]]);
  const pull = await runUpdate(w.deps, config(), { image: `${REPO}:gone`, source: "cli" });
  assert.equal(pull.outcome, "failed");
  assert.equal(w.failedImages.value, null, "nothing was pulled");
  // The rollback is interrupted: its journal stays and recovery finishes the update later.
  w.docker.options.failStartOf = V2;
  const cut = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(cut.outcome, "failed");
  assert.ok(w.journal.entry, "the journal stays");
  assert.equal(w.failedImages.value, null, "not while the journal stays");
});

Deno.test("a failed update (the old container fails too) remembers its image like a rolled-back one", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1], [V1, 2]]) });
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "failed");
  const brokenId = (await w.docker.inspectImage(BROKEN))?.id;
  assert.deepEqual(w.failedImages.value, { container: "bot", imageIds: [brokenId] });
});

Deno.test("only this container's record protects images of failed updates, and with no record the image is still listed", async () => {
  const fresh = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  assert.equal(
    (await runUpdate(fresh.deps, config(), { image: BROKEN, source: "cli" })).outcome,
    "rolled_back",
  );
  const brokenId = (await fresh.docker.inspectImage(BROKEN))!.id;
  assert.deepEqual(fresh.failedImages.value?.imageIds, [brokenId], "no record at all");

  // Another container's record names the image: it is still ours to list.
  const other = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  other.lastUpdate.value = {
    id: "upd-x",
    container: "other-bot",
    finishedAt: "2026-11-29T11:00:00Z",
    image: BROKEN,
    imageId: brokenId,
    previousImage: V1,
    previousImageId: brokenId,
    recentImageIds: [brokenId],
  };
  await runUpdate(other.deps, config(), { image: BROKEN, source: "cli" });
  assert.deepEqual(other.failedImages.value?.imageIds, [brokenId]);

  // This container's record names it (it ran here before): protected, never listed.
  const ours = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  ours.lastUpdate.value = {
    ...other.lastUpdate.value,
    container: "bot",
    imageId: "sha256:aaa",
    previousImageId: "sha256:bbb",
  };
  await runUpdate(ours.deps, config(), { image: BROKEN, source: "cli" });
  assert.deepEqual(ours.failedImages.value?.imageIds, []);
});
