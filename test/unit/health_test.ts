import assert from "node:assert/strict";
import type { ServiceStatus } from "../../lib/adapters/systemctl.ts";
import type { ContainerInfo } from "../../lib/docker.ts";
import type { Config } from "../../lib/config.ts";
import {
  checkHealth,
  type HealthDeps,
  judgeWatcher,
  renderHealth,
  REPAIR_SETTLE_MS,
  repairFor,
} from "../../lib/health.ts";
import type { Heartbeat } from "../../lib/watch/heartbeat.ts";
import { MemoryLogger } from "../../lib/log.ts";
import { FakeClock, FakeJournal, FakeLock } from "../fakes/state.ts";
import { FakeServiceManager, type FakeServiceOptions } from "../fakes/systemctl.ts";

const UNIT = "hyperbot-update-monitor.service";
const config = { service: "hyperbot-update-monitor", container: "bot" };

function container(overrides: Partial<ContainerInfo> = {}): ContainerInfo {
  return {
    id: "c1",
    name: "bot",
    imageRef: "127.0.0.1:5000/hyperbot/app:v1",
    imageId: "sha256:aaa",
    running: true,
    restarting: false,
    status: "running",
    exitCode: 0,
    restartCount: 0,
    health: null,
    startedAt: "2026-11-29T11:00:00Z",
    labels: {},
    inspect: {} as ContainerInfo["inspect"],
    ...overrides,
  };
}

/** A heartbeat store the fake systemd writes to when it starts the watcher. */
class Beats {
  current: Heartbeat | null = null;
  constructor(private readonly clock: FakeClock) {}
  beat(pid: number, ageMs = 0, state: Heartbeat["state"] = "idle") {
    const at = new Date(this.clock.now().getTime() - ageMs).toISOString();
    this.current = { timestamp: at, pid, state, startedAt: at, intervalMs: 30_000 };
  }
  read() {
    return Promise.resolve(this.current);
  }
}

function setup(options: FakeServiceOptions = {}, bot: ContainerInfo | null = container()) {
  const clock = new FakeClock();
  const beats = new Beats(clock);
  const services = new FakeServiceManager(clock, {
    onStart: (_unit, pid) => beats.beat(pid),
    ...options,
  });
  const inspected: string[] = [];
  const logger = new MemoryLogger();
  const deps: HealthDeps = {
    services,
    heartbeat: beats,
    docker: {
      inspectContainer: (name) => {
        inspected.push(name);
        return Promise.resolve(bot);
      },
    },
    clock,
    logger,
  };
  return { clock, beats, services, deps, inspected, logger };
}

function status(overrides: Partial<ServiceStatus>): ServiceStatus {
  return {
    unit: UNIT,
    loadState: "loaded",
    activeState: "active",
    subState: "running",
    unitFileState: "enabled",
    activeSince: new Date("2026-11-29T11:00:00Z"),
    mainPid: 42,
    restarts: 0,
    result: "success",
    ...overrides,
  };
}

const NOW = new Date("2026-11-29T12:00:00Z");
const beat = (pid: number, ageS: number, state: Heartbeat["state"] = "idle"): Heartbeat => ({
  timestamp: new Date(NOW.getTime() - ageS * 1000).toISOString(),
  pid,
  state,
  startedAt: "2026-11-29T11:00:00Z",
  intervalMs: 30_000,
});

Deno.test("a watcher that is active with a fresh heartbeat is ok", () => {
  assert.equal(judgeWatcher(status({}), beat(42, 10), NOW), "ok");
});

Deno.test("a watcher whose heartbeat is 90 s old or more is hung", () => {
  assert.equal(judgeWatcher(status({}), beat(42, 89), NOW), "ok");
  assert.equal(judgeWatcher(status({}), beat(42, 90), NOW), "hung");
  assert.equal(judgeWatcher(status({}), null, NOW), "hung");
});

Deno.test("a heartbeat written by another process does not count", () => {
  assert.equal(judgeWatcher(status({ mainPid: 43 }), beat(42, 5), NOW), "hung");
});

Deno.test("a watcher that started less than 90 s ago gets time for its first heartbeat", () => {
  const since = new Date(NOW.getTime() - 30_000);
  assert.equal(judgeWatcher(status({ activeSince: since }), null, NOW), "starting");
});

Deno.test("stopped, failed, restarting, stopping, missing and unreachable services are told apart", () => {
  assert.equal(
    judgeWatcher(status({ activeState: "inactive", subState: "dead" }), null, NOW),
    "stopped",
  );
  assert.equal(
    judgeWatcher(status({ activeState: "failed", subState: "failed" }), null, NOW),
    "failed",
  );
  assert.equal(
    judgeWatcher(status({ activeState: "activating", subState: "auto-restart" }), null, NOW),
    "restarting",
  );
  assert.equal(judgeWatcher(status({ activeState: "deactivating" }), null, NOW), "stopping");
  assert.equal(judgeWatcher(status({ loadState: "not-found" }), null, NOW), "not_installed");
  assert.equal(judgeWatcher(null, null, NOW), "unknown");
});

Deno.test("only stopped, failed, restarting and hung watchers are repaired", () => {
  assert.equal(repairFor("stopped"), "restart");
  assert.equal(repairFor("failed"), "restart");
  assert.equal(repairFor("restarting"), "restart");
  assert.equal(repairFor("hung"), "kill_and_restart");
  for (const v of ["ok", "starting", "stopping", "not_installed", "unknown"] as const) {
    assert.equal(repairFor(v), "none");
  }
});

Deno.test("health of a live watcher and a running bot changes nothing and exits ok", async () => {
  const { deps, services, beats, clock, inspected, logger } = setup();
  const unit = services.addUnit(UNIT);
  await clock.sleep(120_000);
  beats.beat(unit.mainPid, 5_000);
  const report = await checkHealth(deps, config);
  assert.equal(report.ok, true);
  assert.equal(report.verdict, "ok");
  assert.equal(report.repair.attempted, false);
  assert.deepEqual(services.calls, [`status ${UNIT}`]);
  assert.deepEqual(inspected, ["bot"]);
  assert.ok(logger.lines.some((l) => l.level === "info" && l.message === "all well"));
});

Deno.test("health restarts a stopped watcher and checks that it stays up", async () => {
  const { deps, services, clock } = setup();
  services.addUnit(UNIT, { activeState: "inactive", subState: "dead", mainPid: 0 });
  const report = await checkHealth(deps, config);
  assert.equal(report.ok, true);
  assert.equal(report.verdict, "stopped");
  assert.equal(report.repair.succeeded, true);
  assert.match(report.repair.detail!, /^restarted; pid \d+, heartbeat idle$/);
  assert.ok(services.calls.includes(`restart ${UNIT}`));
  // It stayed up: the status was looked at again, REPAIR_SETTLE_MS after the start.
  const started = services.units.get(UNIT)!.activeSince!.getTime();
  assert.ok(clock.now().getTime() - started >= REPAIR_SETTLE_MS, "the settle time was waited");
  assert.ok(
    services.calls.filter((c) => c === `status ${UNIT}`).length >= 3,
    "status before, at the start and after the settle time",
  );
  assert.equal(services.units.get(UNIT)!.activeState, "active");
});

Deno.test("health clears the failed state before restarting a failed watcher", async () => {
  const { deps, services } = setup();
  services.addUnit(UNIT, { activeState: "failed", subState: "failed", mainPid: 0 });
  const report = await checkHealth(deps, config);
  assert.equal(report.ok, true);
  const i = services.calls.indexOf(`reset-failed ${UNIT}`);
  assert.ok(i >= 0 && i < services.calls.indexOf(`restart ${UNIT}`));
});

Deno.test("health kills a hung watcher with SIGKILL before restarting it", async () => {
  const { deps, services, beats, clock } = setup();
  const unit = services.addUnit(UNIT);
  await clock.sleep(600_000);
  beats.beat(unit.mainPid, 400_000);
  const report = await checkHealth(deps, config);
  assert.equal(report.verdict, "hung");
  assert.equal(report.repair.action, "kill_and_restart");
  assert.equal(report.ok, true);
  assert.deepEqual(services.calls.filter((c) => !c.startsWith("status")), [
    `kill SIGKILL ${UNIT}`,
    `restart ${UNIT}`,
  ]);
});

Deno.test("health reports failure when the restart fails", async () => {
  const { deps, services } = setup({ startFails: true });
  services.addUnit(UNIT, { activeState: "inactive", subState: "dead", mainPid: 0 });
  const report = await checkHealth(deps, config);
  assert.equal(report.ok, false);
  assert.equal(report.repair.succeeded, false);
  assert.match(report.problems.join("\n"), /repair failed: Job for .* failed/);
});

Deno.test("health reports failure when the restarted watcher dies at once", async () => {
  const { deps, services } = setup({ crashesAfterStart: true });
  services.addUnit(UNIT, { activeState: "inactive", subState: "dead", mainPid: 0 });
  const report = await checkHealth(deps, config);
  assert.equal(report.ok, false);
  assert.match(report.repair.detail!, /did not stay up/);
});

Deno.test("health waits to see a restarted watcher stay up: one that dies a second after its start is no repair", async () => {
  const { deps, services } = setup({ crashesAfterStart: 1_000 });
  services.addUnit(UNIT, { activeState: "inactive", subState: "dead", mainPid: 0 });
  const report = await checkHealth(deps, config);
  assert.equal(report.ok, false);
  assert.equal(report.repair.succeeded, false);
  assert.match(report.repair.detail!, /did not stay up/);
});

Deno.test("health --no-fix only reports", async () => {
  const { deps, services } = setup();
  services.addUnit(UNIT, { activeState: "inactive", subState: "dead", mainPid: 0 });
  const report = await checkHealth(deps, config, { fix: false });
  assert.equal(report.ok, false);
  assert.equal(report.repair.attempted, false);
  assert.deepEqual(services.calls, [`status ${UNIT}`]);
});

Deno.test("health cannot repair a service that is not installed or a host without systemd", async () => {
  const missing = setup();
  const r1 = await checkHealth(missing.deps, config);
  assert.equal(r1.ok, false);
  assert.equal(r1.verdict, "not_installed");
  assert.match(r1.problems[0], /install --apply/);

  const noSystemd = setup({ unreachable: true });
  const r2 = await checkHealth(noSystemd.deps, config);
  assert.equal(r2.ok, false);
  assert.equal(r2.verdict, "unknown");
  assert.equal(r2.service, null);
  assert.match(r2.serviceError!, /not been booted with systemd/);
});

Deno.test("a stopped bot container makes health fail, and health never touches it", async () => {
  const { deps, services, beats } = setup(
    {},
    container({ running: false, status: "exited", exitCode: 137 }),
  );
  const unit = services.addUnit(UNIT);
  beats.beat(unit.mainPid, 1_000);
  const report = await checkHealth(deps, config);
  assert.equal(report.ok, false);
  assert.equal(report.verdict, "ok");
  assert.equal(report.container.status, "exited");
  assert.match(report.problems[0], /not running \(exited\); health does not restart the bot/);
});

Deno.test("a missing bot container during an update is not a fault", async () => {
  const { deps, services, beats } = setup({}, null);
  const unit = services.addUnit(UNIT);
  beats.beat(unit.mainPid, 1_000, "updating");
  const report = await checkHealth(deps, config);
  assert.equal(report.ok, true);
  assert.equal(report.container.found, false);
});

Deno.test("a killed watcher's fresh 'updating' heartbeat does not excuse a missing bot", async () => {
  const { deps, services, beats } = setup({}, null);
  const unit = services.addUnit(UNIT);
  beats.beat(unit.mainPid + 1000, 1_000, "updating");
  const report = await checkHealth(deps, config, { fix: false });
  assert.equal(report.ok, false);
  assert.equal(report.heartbeat?.live, false);
  assert.ok(report.problems.some((p) => /does not exist/.test(p)), report.problems.join("; "));
});

Deno.test("health --no-fix reports an update the journal holds unfinished, with what finishes it", async () => {
  const { deps, services } = setup();
  services.addUnit(UNIT);
  const journal = new FakeJournal();
  const lock = new FakeLock();
  deps.unfinished = { journal, lock };
  assert.equal((await checkHealth(deps, config, { fix: false })).ok, true);
  await journal.write({
    id: "upd-1",
    pid: 4242,
    startedAt: "2026-11-29T11:59:00Z",
    container: "bot",
    step: "verify",
    verified: false,
    image: "127.0.0.1:5000/hyperbot/app:v2",
    previousImage: "127.0.0.1:5000/hyperbot/app:v1",
    previousImageId: "sha256:aaa",
    oldContainerId: "c0",
    oldWasRunning: true,
    oldRestartPolicy: null,
    newContainerId: "c1",
    tempName: "bot-updating",
    previousName: "bot-previous",
    steps: [],
  });
  const report = await checkHealth(deps, config, { fix: false });
  assert.equal(report.ok, false);
  assert.equal(report.unfinished?.id, "upd-1");
  assert.match(
    renderHealth(report),
    /^❌ update: update upd-1 was interrupted at step verify .*: the watcher finishes it/m,
  );
  lock.current = { pid: 1, command: "update (cli)", since: "" };
  assert.equal((await checkHealth(deps, config, { fix: false })).ok, true, "a running update");
});

Deno.test("the bot's version comes from the OCI label, else the tag", async () => {
  const labelled = setup(
    {},
    container({ labels: { "org.opencontainers.image.version": "2.2.7" } }),
  );
  labelled.services.addUnit(UNIT);
  assert.equal(
    (await checkHealth(labelled.deps, config, { fix: false })).container.version,
    "2.2.7",
  );
  const tagged = setup();
  tagged.services.addUnit(UNIT);
  assert.equal((await checkHealth(tagged.deps, config, { fix: false })).container.version, "v1");
});

Deno.test("a Docker failure is reported, not thrown", async () => {
  const { deps, services, beats } = setup();
  deps.docker = {
    inspectContainer: () => Promise.reject(new Error("connect ENOENT /var/run/docker.sock")),
  };
  const unit = services.addUnit(UNIT);
  beats.beat(unit.mainPid, 1_000);
  const report = await checkHealth(deps, config);
  assert.equal(report.ok, false);
  assert.equal(report.container.status, "unknown");
  assert.match(renderHealth(report), /❌ bot: bot unknown: connect ENOENT/);
});

Deno.test("the health summary marks a repair with 🔧 and a healthy run with ✅", async () => {
  const { deps, services } = setup();
  services.addUnit(UNIT, { activeState: "inactive", subState: "dead", mainPid: 0 });
  const text = renderHealth(await checkHealth(deps, config));
  assert.match(text, /^🔧 watcher was stopped: restarted; pid \d+/);
  assert.match(text, /✅ bot: bot running, version v1$/);
});

Deno.test("health --no-fix warns when notify is configured but the installed unit has no network, and stays ok", async () => {
  const { deps, services, beats, clock, logger } = setup();
  const unit = services.addUnit(UNIT);
  unit.access = {
    privateNetwork: true,
    restrictAddressFamilies: "AF_UNIX",
    ipAddressDeny: ["::/0", "0.0.0.0/0"],
    ipAddressAllow: [],
    protectSystem: "strict",
    readWritePaths: ["/opt/bot"],
  };
  await clock.sleep(120_000);
  beats.beat(unit.mainPid, 5_000);
  const notify = [{ type: "webhook", name: "ops", url: "https://ops.example.com/h" }] as Config[
    "notify"
  ];
  const report = await checkHealth(deps, { ...config, notify, metricsFile: "" }, { fix: false });
  assert.equal(report.ok, true, "install --apply repairs it, not health: no failure, no cron mail");
  assert.equal(report.warnings.length, 1);
  assert.match(
    renderHealth(report),
    /^⚠️ unit: notify is configured, but hyperbot-update-monitor\.service gives the watcher no network \(PrivateNetwork=yes\).*install --apply/m,
  );
  assert.ok(
    logger.lines.some((l) => l.level === "warn" && /notify is configured/.test(l.message)),
  );
  // Without notify the same unit is what it should be.
  assert.deepEqual((await checkHealth(deps, config, { fix: false })).warnings, []);
});
