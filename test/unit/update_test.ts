import assert from "node:assert/strict";
import { renderReport } from "../../lib/commands/update.ts";
import type { MetricsEvent } from "../../lib/metrics/counters.ts";
import { loadConfig } from "../../lib/config.ts";
import { describeError, LockedError, NothingToDoError, RejectedError } from "../../lib/errors.ts";
import { MemoryLogger } from "../../lib/log.ts";
import { type StepName, STEPS } from "../../lib/update/report.ts";
import { recoverFromJournal } from "../../lib/update/recover.ts";
import { runUpdate, type UpdateDeps } from "../../lib/update/run.ts";
import { FakeDockerEngine, type FakeDockerOptions } from "../fakes/docker.ts";
import {
  FakeClock,
  FakeFailedImages,
  FakeJournal,
  FakeLastUpdate,
  FakeLock,
  FakeStatus,
} from "../fakes/state.ts";

const REPO = "registry.example.com:5000/org/bot";
const V1 = `${REPO}:1.0`;
const V2 = `${REPO}:2.0`;
const BROKEN = `${REPO}:broken`;

const V1_CONFIG = {
  Env: ["PATH=/bin", "APP_VERSION=1", "ONLY_IN_V1=yes"],
  Cmd: ["/bin/bot", "--v1"],
  Labels: { "org.opencontainers.image.version": "1.0" },
  WorkingDir: "/app",
  Volumes: { "/data": {} },
};
const V2_CONFIG = {
  Env: ["PATH=/bin", "APP_VERSION=2"],
  Cmd: ["/bin/bot", "--v2"],
  Labels: { "org.opencontainers.image.version": "2.0" },
  WorkingDir: "/app",
  Volumes: { "/data": {} },
};

function config(overrides: Record<string, unknown> = {}) {
  return loadConfig({
    env: {},
    readTextFile: () => null,
    flags: { container: "bot", stableSeconds: 2, healthTimeoutSeconds: 10, ...overrides },
  });
}

interface World {
  docker: FakeDockerEngine;
  deps: UpdateDeps;
  journal: FakeJournal;
  status: FakeStatus;
  lastUpdate: FakeLastUpdate;
  failedImages: FakeFailedImages;
  logger: MemoryLogger;
  oldId: string;
}

async function world(options: FakeDockerOptions = {}): Promise<World> {
  // One clock for the update and the fake's timestamps (Created, StartedAt), as on a server.
  const clock = new FakeClock();
  const docker = new FakeDockerEngine({ now: () => clock.now(), ...options });
  docker.addImage(V1, V1_CONFIG);
  docker.publishImage(V1, V1_CONFIG);
  docker.publishImage(V2, V2_CONFIG);
  docker.publishImage(BROKEN, V2_CONFIG);
  const oldId = await docker.runContainer("bot", {
    Image: V1,
    Env: ["MY_SETTING=keep", "APP_VERSION=1"],
    Labels: { "my.label": "keep" },
    HostConfig: {
      Binds: ["/opt/trading-system/data:/app/data"],
      PortBindings: { "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: "18080" }] },
      RestartPolicy: { Name: "unless-stopped" },
      Memory: 256 * 1024 * 1024,
    },
  });
  const journal = new FakeJournal();
  const status = new FakeStatus();
  const lastUpdate = new FakeLastUpdate();
  const failedImages = new FakeFailedImages();
  const logger = new MemoryLogger();
  const deps: UpdateDeps = {
    docker,
    credentials: { lookup: () => Promise.resolve(null) },
    clock,
    logger,
    lock: new FakeLock(),
    journal,
    status,
    lastUpdate,
    failedImages,
    pid: 4242,
  };
  return { docker, deps, journal, status, lastUpdate, failedImages, logger, oldId };
}

async function botOf(w: World) {
  const info = await w.docker.inspectContainer("bot");
  assert.ok(info, "the bot container exists");
  return info;
}

function assertNoLeftovers(w: World) {
  const names = w.docker.containerNames();
  assert.deepEqual(names.filter((n) => n.startsWith("bot")), ["bot"]);
}

Deno.test("update to a new image recreates the bot with its settings and the new image's defaults", async () => {
  const w = await world();
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  const bot = await botOf(w);
  assert.notEqual(bot.id, w.oldId);
  assert.ok(bot.running);
  assert.equal(bot.imageRef, V2);
  const env = bot.inspect.Config.Env ?? [];
  assert.ok(env.includes("MY_SETTING=keep"), "the container's own env is kept");
  assert.ok(
    env.includes("APP_VERSION=2"),
    "a value the old image supplied gives way to the new image's",
  );
  assert.ok(
    !env.includes("ONLY_IN_V1=yes"),
    "the old image's env does not leak into the new container",
  );
  assert.deepEqual(bot.inspect.Config.Cmd, ["/bin/bot", "--v2"]);
  assert.equal(bot.labels["my.label"], "keep");
  assert.equal(bot.labels["org.opencontainers.image.version"], "2.0");
  assert.deepEqual(bot.inspect.HostConfig.Binds, ["/opt/trading-system/data:/app/data"]);
  assert.deepEqual(bot.inspect.HostConfig.RestartPolicy, { Name: "unless-stopped" });
  assert.equal(bot.inspect.HostConfig.Memory, 256 * 1024 * 1024);
  assertNoLeftovers(w);
  assert.equal(w.journal.entry, null, "the journal is clear");
  assert.equal(w.status.current?.state, "succeeded");
  assert.equal(w.status.current?.previousImage, V1);
  assert.deepEqual(
    w.status.states,
    ["pulling", "creating", "stopping", "starting", "verifying", "succeeded"],
  );
  assert.equal(w.status.history.length, 1);
  assert.equal(w.lastUpdate.value?.previousImage, V1);
});

Deno.test("update pulls before it stops the old container", async () => {
  const w = await world();
  await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  const order = w.docker.calls.map((c) => c.method);
  const at = (method: string, from = 0) => {
    const i = order.indexOf(method as (typeof order)[number], from);
    assert.ok(i >= 0, `${method} was called (after call ${from})`);
    return i;
  };
  assert.ok(at("pullImage") < at("createContainer"));
  assert.ok(at("createContainer") < at("stopContainer"));
  at("startContainer", at("stopContainer"));
});

Deno.test("update --no-pull deploys an image that exists only on this host, without a pull", async () => {
  const w = await world();
  const local = `${REPO}:built-here`;
  w.docker.addImage(local, V2_CONFIG);
  const report = await runUpdate(w.deps, config(), { image: local, noPull: true, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  assert.equal((await botOf(w)).imageRef, local);
  assert.ok(!w.docker.calls.some((c) => c.method === "pullImage"), "nothing was pulled");
  assert.deepEqual(report.steps.map((s) => s.name).slice(0, 3), ["inspect", "compare", "create"]);
  assert.ok(!w.status.states.includes("pulling"));
});

Deno.test("update --no-pull of an image not on this host is rejected and touches nothing", async () => {
  const w = await world();
  await assert.rejects(
    runUpdate(w.deps, config(), { image: V2, noPull: true, source: "cli" }),
    (err: unknown) => {
      assert.ok(err instanceof RejectedError, String(err));
      assert.match(err.message, /not on this host \(--no-pull\)/);
      return true;
    },
  );
  assert.equal((await botOf(w)).id, w.oldId);
  assert.ok((await botOf(w)).running);
  assert.ok(!w.docker.calls.some((c) => c.method === "pullImage" || c.method === "stopContainer"));
  assert.equal(w.journal.entry, null);
  assert.equal(w.status.current, null, "the status file is left as it was");
  assertNoLeftovers(w);
});

Deno.test("update keeps the anonymous volume of the old container instead of an empty one", async () => {
  const w = await world();
  const before = (await botOf(w)).inspect.Mounts?.find((m) => m.Destination === "/data");
  assert.ok(before?.Name, "the old container has an anonymous volume at /data");
  await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  const after = (await botOf(w)).inspect.Mounts?.find((m) => m.Destination === "/data");
  assert.equal(after?.Name, before.Name);
});

Deno.test("update of the image already running is unchanged and restarts nothing", async () => {
  const w = await world();
  const report = await runUpdate(w.deps, config(), { image: V1, source: "cli" });
  assert.equal(report.outcome, "unchanged");
  assert.equal((await botOf(w)).id, w.oldId);
  assert.equal(w.docker.callsTo("createContainer").length, 0);
  assert.equal(w.docker.callsTo("stopContainer").length, 0);
  assert.equal(w.status.current?.state, "unchanged");
});

Deno.test("update without an image re-pulls the tag the container runs", async () => {
  const w = await world();
  const report = await runUpdate(w.deps, config(), { source: "cli" });
  assert.equal(report.outcome, "unchanged");
  assert.deepEqual(w.docker.callsTo("pullImage")[0][0], V1);
});

Deno.test("update --force recreates the container on the same image", async () => {
  const w = await world();
  const report = await runUpdate(w.deps, config(), { image: V1, force: true, source: "cli" });
  assert.equal(report.outcome, "updated");
  const bot = await botOf(w);
  assert.notEqual(bot.id, w.oldId);
  assert.ok(bot.running);
});

for (
  const [why, options] of [
    ["the new container exits at once", { exitAfterStart: new Map([[BROKEN, 1]]) }],
    ["the new container crash-loops", { crashLoop: BROKEN }],
    ["the new container cannot start because its port is taken", { portConflictFor: BROKEN }],
    ["the new container fails to start", { failStartOf: BROKEN }],
  ] as [string, FakeDockerOptions][]
) {
  Deno.test(`update rolls back when ${why}`, async () => {
    const w = await world(options);
    const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
    assert.equal(report.outcome, "rolled_back");
    assert.ok(report.error);
    const bot = await botOf(w);
    assert.equal(bot.id, w.oldId, "the old container is back under its name");
    assert.ok(bot.running);
    assertNoLeftovers(w);
    assert.equal(w.journal.entry, null);
    assert.equal(w.status.current?.state, "rolled_back");
    assert.equal(w.lastUpdate.value, null, "a rolled back update is no rollback target");
    const names = report.steps.map((s) => `${s.name}:${s.ok}`);
    assert.deepEqual(names.slice(-2), [
      `${options.failStartOf || options.portConflictFor ? "start" : "verify"}:false`,
      "rollback:true",
    ]);
    const failed = report.steps.at(-2)!;
    assert.equal(failed.detail, report.error, "the failed step says why");
    assert.deepEqual(w.status.history.at(-1)?.steps, report.steps);
    assert.match(renderReport(report), /(verify|start)\(failed\) → rollback$/m);
  });
}

Deno.test("update.log names the exit code the new container died with, and says when it printed nothing", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 3]]) });
  // By the time the rollback removes it, Docker's restart policy has run it again: its
  // State.ExitCode is 0 then, not the code it died with.
  w.deps.beforeStep = (step) => {
    if (step !== "rollback") return;
    const state = w.docker.peek("bot")?.State;
    if (state) Object.assign(state, { Running: true, Status: "running", ExitCode: 0 });
  };
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back");
  assert.match(report.error ?? "", /exit(ed with)? code 3/);
  const line = w.logger.lines.find((l) =>
    l.message === "output of the new container before removal"
  );
  assert.ok(line, "the failed container's output is logged");
  assert.equal(line.fields.exitCode, 3);
  assert.equal(line.fields.logs, "(no output)");
});

Deno.test("a rolled back update reports the image ID the bot runs again, the old one", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  const oldImageId = (await botOf(w)).imageId;
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back");
  assert.equal(report.imageId, oldImageId);
  assert.equal(w.status.current?.imageId, oldImageId);
});

Deno.test("update rolls back when the new container never becomes healthy", async () => {
  const w = await world({ healthOf: new Map([[BROKEN, "starting" as const]]) });
  w.docker.publishImage(BROKEN, {
    ...V2_CONFIG,
    Healthcheck: { Test: ["CMD", "true"], Interval: 1e9 },
  });
  const report = await runUpdate(w.deps, config({ healthTimeoutSeconds: 5 }), {
    image: BROKEN,
    source: "cli",
  });
  assert.equal(report.outcome, "rolled_back");
  assert.match(report.error ?? "", /did not become healthy within 5s/);
  assert.equal((await botOf(w)).id, w.oldId);
});

Deno.test("update rolls back when the new container turns unhealthy", async () => {
  const w = await world({
    healthOf: new Map([[BROKEN, ["starting", "unhealthy"] as ("starting" | "unhealthy")[]]]),
  });
  w.docker.publishImage(BROKEN, {
    ...V2_CONFIG,
    Healthcheck: { Test: ["CMD", "false"], Interval: 1e9 },
  });
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back");
  assert.match(report.error ?? "", /unhealthy/);
  assert.equal((await botOf(w)).id, w.oldId);
  const verify = report.steps.find((s) => s.name === "verify");
  assert.equal(verify?.ok, false, "an unhealthy verdict is a failed verify step");
  assert.match(verify?.detail ?? "", /unhealthy/);
});

Deno.test("update succeeds when a HEALTHCHECK reports healthy", async () => {
  const w = await world({
    healthOf: new Map([[V2, ["starting", "starting", "healthy"] as ("starting" | "healthy")[]]]),
  });
  w.docker.publishImage(V2, {
    ...V2_CONFIG,
    Healthcheck: { Test: ["CMD", "true"], Interval: 1e9 },
  });
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
});

for (const failure of ["not_found", "unreachable", "disk_full", "unauthorized"] as const) {
  Deno.test(`update fails with the bot untouched when the pull fails (${failure})`, async () => {
    const w = await world({ failPull: failure });
    const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
    assert.equal(report.outcome, "failed");
    assert.ok(report.error);
    assert.equal((await botOf(w)).id, w.oldId);
    assert.equal(w.docker.callsTo("createContainer").length, 0);
    assert.equal(w.docker.callsTo("stopContainer").length, 0);
    assert.equal(w.status.current?.state, "failed");
  });
}

Deno.test("a pull refused for want of credentials names the config file read and 'docker login'", async () => {
  const w = await world({ failPull: "unauthorized" });
  const deps: UpdateDeps = {
    ...w.deps,
    credentials: { lookup: () => Promise.resolve(null), configFile: "/root/.docker/config.json" },
  };
  const report = await runUpdate(deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "failed");
  assert.match(report.error ?? "", /no basic auth credentials/);
  assert.match(report.error ?? "", /none in \/root\/\.docker\/config\.json/);
  assert.match(report.error ?? "", /'docker login registry\.example\.com:5000'/);
  assert.match(report.error ?? "", /DOCKER_CONFIG/);
  assert.equal((await botOf(w)).id, w.oldId);
});

Deno.test("update rejects a malformed reference before touching anything", async () => {
  const w = await world();
  for (
    const bad of [
      "",
      "org/UPPER:1",
      "a b",
      "repo:tag;rm -rf /",
      "repo@sha256:xyz",
      "repo:" + "x".repeat(200),
    ]
  ) {
    await assert.rejects(
      runUpdate(w.deps, config(), { image: bad, source: "cli" }),
      RejectedError,
      bad,
    );
  }
  assert.equal(w.docker.calls.length, 0);
  assert.equal(w.status.current, null);
});

Deno.test("update rejects a repository outside allowedImages before pulling", async () => {
  const w = await world();
  await assert.rejects(
    runUpdate(w.deps, config(), { image: "evil.example.com/org/bot:2.0", source: "cli" }),
    RejectedError,
  );
  await assert.rejects(
    runUpdate(w.deps, config({ allowedImages: ["other.example.com/app"] }), {
      image: V2,
      source: "cli",
    }),
    RejectedError,
  );
  assert.equal(w.docker.callsTo("pullImage").length, 0);
  assert.equal((await botOf(w)).id, w.oldId);
  assert.equal(w.journal.entry, null);
});

Deno.test("a second update while one holds the lock is refused", async () => {
  const w = await world();
  await w.deps.lock.acquire({ pid: 1, command: "update (cli)", since: "now" });
  await assert.rejects(runUpdate(w.deps, config(), { image: V2, source: "cli" }), LockedError);
  assert.equal(w.docker.calls.length, 0);
});

Deno.test("update --rollback goes back to the image that ran before", async () => {
  const w = await world();
  const v1Id = (await botOf(w)).imageId;
  assert.equal(
    (await runUpdate(w.deps, config(), { image: V2, source: "cli" })).outcome,
    "updated",
  );
  const pulls = w.docker.callsTo("pullImage").length;
  const report = await runUpdate(w.deps, config(), { rollback: true, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  const bot = await botOf(w);
  assert.equal(bot.imageId, v1Id);
  assert.equal(bot.imageRef, V1);
  assert.equal(w.docker.callsTo("pullImage").length, pulls, "no pull for a rollback");
  assert.equal(w.lastUpdate.value?.previousImage, V2);
});

Deno.test("update --force on the same image keeps the image before it as the rollback target", async () => {
  const w = await world();
  const v1Id = (await botOf(w)).imageId;
  assert.equal(
    (await runUpdate(w.deps, config(), { image: V2, source: "cli" })).outcome,
    "updated",
  );
  const forced = await runUpdate(w.deps, config(), { image: V2, force: true, source: "cli" });
  assert.equal(forced.outcome, "updated", forced.error ?? "");
  assert.equal(w.lastUpdate.value?.previousImage, V1);
  assert.equal(w.lastUpdate.value?.previousImageId, v1Id);
  const back = await runUpdate(w.deps, config(), { rollback: true, source: "cli" });
  assert.equal(back.outcome, "updated", back.error ?? "");
  const bot = await botOf(w);
  assert.equal(bot.imageId, v1Id, "--rollback goes back to 1.0, not to 2.0 again");
  assert.equal(bot.imageRef, V1);
});

Deno.test("update --rollback with nothing different to go back to fails (exit 1) and touches nothing", async () => {
  const w = await world();
  const forced = await runUpdate(w.deps, config(), { image: V1, force: true, source: "cli" });
  assert.equal(forced.outcome, "updated", forced.error ?? "");
  const botId = (await botOf(w)).id;
  const creates = w.docker.callsTo("createContainer").length;
  const states = w.status.states.length;
  const history = w.status.history.length;
  const events: MetricsEvent[] = [];
  const deps: UpdateDeps = { ...w.deps, metrics: { record: (e) => events.push(e) } };
  const err: unknown = await runUpdate(deps, config(), { rollback: true, source: "cli" }).then(
    () => null,
    (e) => e,
  );
  assert.ok(err instanceof NothingToDoError);
  assert.equal(describeError(err).exitCode, 1);
  assert.match(describeError(err).message, /^nothing to roll back to: 'bot' already runs /);
  assert.equal((await botOf(w)).id, botId, "the container is not recreated");
  assert.equal(w.docker.callsTo("createContainer").length, creates);
  assert.equal(w.status.states.length, states, "no status file written");
  assert.equal(w.status.history.length, history, "no history line");
  assert.deepEqual(events, [], "no updates_total{failed}");
  assert.equal(w.journal.entry, null);
});

Deno.test("update --rollback without an earlier update says nothing to roll back to and writes nothing", async () => {
  const w = await world();
  const events: MetricsEvent[] = [];
  const deps: UpdateDeps = { ...w.deps, metrics: { record: (e) => events.push(e) } };
  const err: unknown = await runUpdate(deps, config(), { rollback: true, source: "cli" }).then(
    () => null,
    (e) => e,
  );
  assert.equal(describeError(err).exitCode, 1);
  assert.match(
    describeError(err).message,
    /^nothing to roll back to: no successful update of 'bot' is recorded$/,
  );
  assert.equal((await botOf(w)).id, w.oldId);
  assert.deepEqual(w.status.states, []);
  assert.deepEqual(w.status.history, []);
  assert.deepEqual(events, []);
  assert.equal(w.journal.entry, null);
});

Deno.test("update with the Docker daemon unreachable exits 4 and writes no failed update anywhere", async () => {
  const w = await world();
  w.docker.options.unreachable = true;
  const events: MetricsEvent[] = [];
  const deps: UpdateDeps = { ...w.deps, metrics: { record: (e) => events.push(e) } };
  const err: unknown = await runUpdate(deps, config(), { image: V2, source: "cli" }).then(
    () => null,
    (e) => e,
  );
  assert.equal(describeError(err).exitCode, 4);
  assert.deepEqual(w.status.states, [], "no status file written");
  assert.deepEqual(w.status.history, [], "no history line");
  assert.deepEqual(events, [], "no updates_total{failed}");
  assert.equal(w.journal.entry, null);
});

Deno.test("update refuses a container started with --rm", async () => {
  const w = await world();
  w.docker.addImage(V1, V1_CONFIG);
  await w.docker.runContainer("rmbot", { Image: V1, HostConfig: { AutoRemove: true } });
  await assert.rejects(
    runUpdate(w.deps, config({ container: "rmbot" }), { image: V2, source: "cli" }),
    RejectedError,
  );
  assert.equal(w.docker.callsTo("createContainer").length, 0);
});

Deno.test("update keeps the compose labels on the recreated container", async () => {
  const w = await world();
  await w.docker.runContainer("cbot", {
    Image: V1,
    Labels: { "com.docker.compose.project": "trading", "com.docker.compose.service": "app" },
  });
  const report = await runUpdate(w.deps, config({ container: "cbot" }), {
    image: V2,
    source: "cli",
  });
  assert.equal(report.outcome, "updated");
  const bot = await w.docker.inspectContainer("cbot");
  assert.equal(bot?.labels["com.docker.compose.project"], "trading");
});

Deno.test("update keeps only keepImages images of the repository", async () => {
  const w = await world();
  const v1Id = (await botOf(w)).imageId;
  await runUpdate(w.deps, config({ keepImages: 2 }), { image: V2, source: "cli" });
  assert.ok(await w.docker.inspectImage(v1Id), "the previous image is kept for --rollback");
  w.docker.publishImage(`${REPO}:3.0`, { ...V2_CONFIG, Env: ["APP_VERSION=3"] });
  await runUpdate(w.deps, config({ keepImages: 2 }), { image: `${REPO}:3.0`, source: "cli" });
  assert.equal(await w.docker.inspectImage(v1Id), null, "the image two updates back is removed");
  assert.ok(await w.docker.inspectImage(V2));
});

Deno.test("images pulled for failed and rolled-back updates are bounded by keepImages, never the rollback target or one a container uses", async () => {
  const broken = (n: number) => `${REPO}:broken-${n}`;
  const crash = new Map<string, number>();
  const w = await world({ exitAfterStart: crash });
  const cfg = config({ keepImages: 2 });
  const v1Id = (await botOf(w)).imageId;
  assert.equal((await runUpdate(w.deps, cfg, { image: V2, source: "cli" })).outcome, "updated");
  const v2Id = (await botOf(w)).imageId;
  const ids: string[] = [];
  for (let n = 1; n <= 4; n++) {
    ids.push(w.docker.publishImage(broken(n), { ...V2_CONFIG, Env: [`BROKEN=${n}`] }));
    crash.set(broken(n), 1);
  }
  // broken-1 also runs in another container: the daemon refuses to remove it.
  const r1 = await runUpdate(w.deps, cfg, { image: broken(1), source: "trigger" });
  assert.equal(r1.outcome, "rolled_back");
  await w.docker.runContainer("other", { Image: broken(1) });
  for (let n = 2; n <= 4; n++) {
    const r = await runUpdate(w.deps, cfg, { image: broken(n), source: "trigger" });
    assert.equal(r.outcome, "rolled_back", r.error ?? "");
  }
  assert.ok(await w.docker.inspectImage(ids[0]), "an image another container uses stays");
  assert.equal(await w.docker.inspectImage(ids[1]), null, "broken-2, beyond keepImages, is gone");
  assert.ok(await w.docker.inspectImage(ids[2]), "the newest failed images stay for a retry");
  assert.ok(await w.docker.inspectImage(ids[3]));
  assert.ok(await w.docker.inspectImage(v1Id), "the rollback target stays");
  assert.ok(await w.docker.inspectImage(v2Id), "the running image stays");
  assert.deepEqual(w.failedImages.value?.imageIds, [ids[3], ids[2], ids[0]]);
  // A failed update whose compare found the running image (--force) adds nothing to remove.
  crash.set(V2, 1);
  const forced = await runUpdate(w.deps, cfg, { image: V2, force: true, source: "cli" });
  assert.equal(forced.outcome, "failed", "the old container fails on it too");
  assert.ok(await w.docker.inspectImage(v2Id));
  assert.deepEqual(w.failedImages.value?.imageIds, [ids[3], ids[2], ids[0]]);
});

/** Runs an update that "dies" when it reaches `step`: the promise is abandoned, as with kill -9. */
async function crashAt(w: World, image: string, step: StepName) {
  let reached = false;
  const deps: UpdateDeps = {
    ...w.deps,
    beforeStep: (s) => {
      if (s !== step) return;
      reached = true;
      return new Promise<void>(() => {}); // never returns: the process is gone
    },
  };
  void runUpdate(deps, config(), { image, source: "trigger" });
  for (let i = 0; i < 200 && !reached; i++) await new Promise((r) => setTimeout(r, 0));
  return reached;
}

Deno.test("an update to a failing image never reaches cleanup: it rolls back before", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 3]]) });
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back");
  const steps = report.steps.map((s) => s.name);
  assert.deepEqual(steps.slice(-2), ["verify", "rollback"]);
  assert.ok(!steps.includes("cleanup"));
});

for (const step of STEPS) {
  // A failing image rolls back before cleanup (the test above), so it has no kill there.
  for (const image of step === "cleanup" ? [V2] : [V2, BROKEN]) {
    Deno.test(`a process killed at step '${step}' of an update to ${image.split(":").pop()} is recovered from the journal`, async () => {
      const w = await world({ exitAfterStart: new Map([[BROKEN, 3]]) });
      assert.ok(await crashAt(w, image, step), `step ${step} was reached`);
      assert.ok(w.journal.entry, "the journal holds the interrupted update");
      // A restarted process: the kernel dropped the dead one's lock.
      const restarted: UpdateDeps = { ...w.deps, lock: new FakeLock() };
      const report = await recoverFromJournal(restarted, config());
      assert.ok(report);
      const bot = await botOf(w);
      assert.ok(bot.running, "the bot runs after recovery");
      assertNoLeftovers(w);
      assert.equal(w.journal.entry, null, "the journal is clear");
      if (step === "cleanup") {
        assert.equal(report.outcome, "updated");
        assert.equal(bot.imageRef, V2);
        assert.equal(w.status.current?.state, "succeeded");
      } else {
        assert.equal(bot.id, w.oldId, "the old container is back");
        assert.ok(["rolled_back", "failed"].includes(report.outcome));
        assert.equal(w.status.current?.state, report.outcome);
        assert.match(
          w.status.current?.error ?? "",
          new RegExp(`interrupted during step '${step}'`),
        );
      }
    });
  }
}

Deno.test("recovery with an empty journal does nothing", async () => {
  const w = await world();
  assert.equal(await recoverFromJournal(w.deps, config()), null);
  assert.equal(w.docker.calls.length, 0);
});

Deno.test("an update first finishes the journal a killed process left", async () => {
  const w = await world();
  await crashAt(w, V2, "start");
  const restarted: UpdateDeps = { ...w.deps, lock: new FakeLock() };
  const report = await runUpdate(restarted, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  assertNoLeftovers(w);
  assert.equal((await botOf(w)).imageRef, V2);
});

Deno.test("the old container's restart policy is 'no' while it is stopped and comes back on rollback", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  const policies = w.docker.callsTo("setRestartPolicy").map((args) =>
    (args[1] as { Name: string }).Name
  );
  assert.deepEqual(policies, ["no", "unless-stopped"]);
  assert.deepEqual((await botOf(w)).inspect.HostConfig.RestartPolicy, { Name: "unless-stopped" });
});

Deno.test("the new container keeps the restart policy the old one had", async () => {
  const w = await world();
  await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.deepEqual((await botOf(w)).inspect.HostConfig.RestartPolicy, { Name: "unless-stopped" });
});

Deno.test("rollback runs even when the journal can no longer be written", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  const full = new FakeJournal();
  let writes = 0;
  full.write = (entry) => {
    // The disk fills up after the container swap began.
    if (++writes > 6) return Promise.reject(new Error("No space left on device"));
    full.entry = structuredClone(entry);
    return Promise.resolve();
  };
  const report = await runUpdate({ ...w.deps, journal: full }, config(), {
    image: BROKEN,
    source: "cli",
  });
  assert.equal(report.outcome, "rolled_back", report.error ?? "");
  const bot = await botOf(w);
  assert.equal(bot.id, w.oldId);
  assert.ok(bot.running);
});

Deno.test("recovery after a kill between stop and rename starts the stopped old container", async () => {
  const w = await world();
  await crashAt(w, V2, "rename");
  assert.equal(w.docker.peek(w.oldId)?.State.Running, false, "the old container was stopped");
  const restarted: UpdateDeps = { ...w.deps, lock: new FakeLock() };
  const before = w.docker.calls.length;
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "rolled_back", report?.error ?? "");
  const starts = w.docker.calls.slice(before).filter((c) =>
    c.method === "startContainer" && c.args[0] === w.oldId
  );
  assert.equal(starts.length, 1, "the old container is started once");
  const bot = await botOf(w);
  assert.equal(bot.id, w.oldId);
  assert.ok(bot.running);
});

Deno.test("recovery never removes a container just because it has the bot's name", async () => {
  const w = await world();
  await crashAt(w, V2, "start");
  // Meanwhile someone removed both containers and started a bot by hand.
  const j = w.journal.entry!;
  await w.docker.removeContainer(j.oldContainerId!, { force: true });
  await w.docker.removeContainer(j.newContainerId!, { force: true });
  const manual = await w.docker.runContainer("bot", { Image: V1 });
  const restarted: UpdateDeps = { ...w.deps, lock: new FakeLock() };
  const report = await recoverFromJournal(restarted, config());
  assert.match(report?.error ?? "", /removed by someone else/);
  assert.equal(w.journal.entry, null, "nothing is left to roll back to");
  const bot = await botOf(w);
  assert.equal(bot.id, manual, "the hand-started bot is untouched");
  assert.ok(bot.running);
});

Deno.test("a rollback whose old container fails too ends the update and does not block the next", async () => {
  const w = await world({ exitAfterStart: new Map([[BROKEN, 1]]) });
  // The old bot is itself broken: once stopped, it exits right after every start.
  w.docker.options.exitAfterStart!.set(V1, 2);
  const report = await runUpdate(w.deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "failed");
  assert.match(report.error ?? "", /old container failed too/);
  assert.equal(w.journal.entry, null, "the journal is clear");
  assert.equal((await botOf(w)).id, w.oldId, "the old container keeps the bot's name");
  const fix = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(fix.outcome, "updated", fix.error ?? "");
  assert.ok((await botOf(w)).running);
});

Deno.test("--rollback after a re-pull of the same tag runs the old image by its name", async () => {
  const w = await world();
  const v1Id = (await botOf(w)).imageId;
  w.docker.publishImage(V1, { ...V1_CONFIG, Env: ["APP_VERSION=1.0.1"] }); // same tag, new build
  assert.equal((await runUpdate(w.deps, config(), { source: "trigger" })).outcome, "updated");
  const report = await runUpdate(w.deps, config(), { rollback: true, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  const bot = await botOf(w);
  assert.equal(bot.imageId, v1Id);
  assert.equal(bot.imageRef, V1, "run by name, never by a bare image ID");
  assert.equal(report.image, V1);
});

Deno.test("keepImages counts the images deployed to the container", async () => {
  const w = await world();
  const v1Id = (await botOf(w)).imageId;
  w.docker.publishImage(`${REPO}:3.0`, { ...V2_CONFIG, Env: ["APP_VERSION=3"] });
  await runUpdate(w.deps, config({ keepImages: 3 }), { image: V2, source: "cli" });
  await runUpdate(w.deps, config({ keepImages: 3 }), { image: `${REPO}:3.0`, source: "cli" });
  assert.ok(await w.docker.inspectImage(v1Id), "three kept: 3.0, 2.0 and 1.0");
  assert.ok(await w.docker.inspectImage(V2));
});

Deno.test("cleanup never removes an image that was not deployed to the container", async () => {
  const w = await world();
  const prefetched = w.docker.addImage(`${REPO}:4.0-rc`, { ...V2_CONFIG, Env: ["APP_VERSION=4"] });
  w.docker.publishImage(`${REPO}:3.0`, { ...V2_CONFIG, Env: ["APP_VERSION=3"] });
  await runUpdate(w.deps, config({ keepImages: 1 }), { image: V2, source: "cli" });
  await runUpdate(w.deps, config({ keepImages: 1 }), { image: `${REPO}:3.0`, source: "cli" });
  assert.ok(await w.docker.inspectImage(prefetched), "an image pulled ahead of a rollout stays");
  assert.equal(await w.docker.inspectImage(V2), null, "an image this container ran before goes");
});

Deno.test("recovery does not trust a status file the bot's container forged", async () => {
  const w = await world();
  await crashAt(w, V2, "verify");
  const j = w.journal.entry!;
  // The container writes a "succeeded" result with the id it saw in the progress status.
  w.status.current = { ...w.status.current!, id: j.id, state: "succeeded", finishedAt: "now" };
  const restarted: UpdateDeps = { ...w.deps, lock: new FakeLock() };
  const report = await recoverFromJournal(restarted, config());
  assert.equal(report?.outcome, "rolled_back");
  assert.equal((await botOf(w)).id, w.oldId, "the old container is back");
  assertNoLeftovers(w);
});

Deno.test("a kill after the result was decided leaves a journal that recovery just clears", async () => {
  const w = await world();
  const journal = new FakeJournal();
  journal.clear = () => Promise.reject(new Error("killed before the journal was removed"));
  await assert.rejects(runUpdate({ ...w.deps, journal }, config(), { image: V2, source: "cli" }));
  assert.equal(journal.entry?.finished, true);
  const statusBefore = structuredClone(w.status.current);
  const restarted: UpdateDeps = { ...w.deps, journal: new FakeJournal(), lock: new FakeLock() };
  await restarted.journal.write(journal.entry!);
  assert.equal(await recoverFromJournal(restarted, config()), null);
  assert.deepEqual(w.status.current, statusBefore, "the result stays as written");
  assert.equal((await botOf(w)).imageRef, V2);
});

/** The world with the fake engine's timestamps (StartedAt, FinishedAt) on the update's clock. */
async function timedWorld(options: FakeDockerOptions = {}) {
  const w = await world(options);
  const clock = w.deps.clock as FakeClock;
  w.docker.options.now = () => clock.now();
  return { ...w, clock };
}

function stepOf(report: { steps: { name: string; finishedAt?: string }[] }, name: string) {
  const step = report.steps.find((s) => s.name === name);
  assert.ok(step?.finishedAt, `step ${name} finished`);
  return Date.parse(step.finishedAt);
}

Deno.test("an update measures the bot's downtime from the old container's stop to the new one's start, without the pull or the verification", async () => {
  const w = await timedWorld();
  const deps: UpdateDeps = {
    ...w.deps,
    // Time passes in the pull (bot running), between stop and start (bot down), and the
    // verification waits stableSeconds (new bot running).
    beforeStep: (s) =>
      s === "pull" ? w.clock.advance(5_000) : s === "rename" ? w.clock.advance(400) : undefined,
  };
  const report = await runUpdate(deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated", report.error ?? "");
  assert.equal(report.downtimeMs, 400);
  assert.equal(report.durationMs, Date.parse(report.finishedAt) - Date.parse(report.startedAt));
  assert.ok(report.durationMs >= 5_000 + 400 + 2_000, `duration ${report.durationMs}`);
  for (const file of [w.status.current, w.status.history.at(-1)]) {
    assert.equal(file?.downtimeMs, 400, "status file and history line carry the downtime");
    assert.equal(file?.durationMs, report.durationMs);
    assert.equal(file?.finishedAt, report.finishedAt);
  }
});

Deno.test("a rolled-back update reports the whole time the bot was not running, until the old container runs again", async () => {
  const w = await timedWorld({ exitAfterStart: new Map([[BROKEN, 3]]) });
  const deps: UpdateDeps = {
    ...w.deps,
    beforeStep: (s) => s === "rename" || s === "rollback" ? w.clock.advance(700) : undefined,
  };
  const report = await runUpdate(deps, config(), { image: BROKEN, source: "cli" });
  assert.equal(report.outcome, "rolled_back", report.error ?? "");
  const old = await botOf(w);
  assert.equal(old.id, w.oldId);
  const backAt = Date.parse(old.inspect.State.StartedAt!);
  assert.equal(report.downtimeMs, backAt - stepOf(report, "stop"));
  assert.ok(report.downtimeMs! >= 1_400, `downtime ${report.downtimeMs}`);
  assert.ok(backAt > stepOf(report, "start"), "the failed new container's run is counted as down");
  assert.equal(w.status.history.at(-1)?.downtimeMs, report.downtimeMs);
});

Deno.test("an update that changes nothing reports no downtime", async () => {
  const w = await timedWorld();
  const report = await runUpdate(w.deps, config(), { image: V1, source: "cli" });
  assert.equal(report.outcome, "unchanged");
  assert.equal(report.downtimeMs, 0);
  assert.equal(w.status.current?.downtimeMs, 0);
});

Deno.test("recovery after a kill counts the time the process was dead as downtime", async () => {
  const w = await timedWorld({ exitAfterStart: new Map([[BROKEN, 3]]) });
  assert.ok(await crashAt(w, BROKEN, "verify"));
  await w.clock.advance(60_000);
  const report = await recoverFromJournal({ ...w.deps, lock: new FakeLock() }, config());
  assert.equal(report?.outcome, "rolled_back", report?.error ?? "");
  const old = await botOf(w);
  const backAt = Date.parse(old.inspect.State.StartedAt!);
  assert.equal(report.downtimeMs, backAt - stepOf(report, "stop"));
  assert.ok(report.downtimeMs! >= 60_000, `downtime ${report.downtimeMs}`);
  assert.equal(w.status.current?.downtimeMs, report.downtimeMs);
});

Deno.test("every ended update, and a recovered one, is told to the metrics with its downtime", async () => {
  const w = await timedWorld({ exitAfterStart: new Map([[BROKEN, 3]]) });
  const recorded: MetricsEvent[] = [];
  const deps: UpdateDeps = { ...w.deps, metrics: { record: (e) => recorded.push(e) } };
  const report = await runUpdate(deps, config(), { image: V2, source: "cli" });
  assert.deepEqual(recorded, [{
    kind: "update",
    outcome: "updated",
    finishedAt: report.finishedAt,
    durationMs: report.durationMs,
    downtimeMs: report.downtimeMs,
  }]);
  assert.ok(await crashAt({ ...w, deps }, BROKEN, "verify"));
  const recovered = await recoverFromJournal({ ...deps, lock: new FakeLock() }, config());
  assert.equal(recorded.length, 2);
  assert.equal(recorded[1].kind === "update" && recorded[1].outcome, recovered?.outcome);
});

Deno.test("the update's report on the terminal says how long the bot was down", async () => {
  const w = await timedWorld();
  const deps: UpdateDeps = {
    ...w.deps,
    beforeStep: (s) => s === "rename" ? w.clock.advance(930) : undefined,
  };
  const report = await runUpdate(deps, config(), { image: V2, source: "cli" });
  assert.match(renderReport(report), /^ {2}downtime: 930 ms \(the update took \d+\.\d s\)$/m);
});
