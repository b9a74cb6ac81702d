/**
 * What cron runs every few minutes: is the monitor service active and its watcher alive
 * (heartbeat fresh)? A stopped, failed or hung watcher is restarted through systemd and the
 * result checked. The bot container's state is reported, never touched.
 *
 * Cheap on purpose: one `systemctl show`, one heartbeat read and one container inspect,
 * side by side. Only a repair takes longer (it waits a few seconds to see the watcher stay up).
 */

import { unitAccessHint, unitAccessProblems } from "./install/unit_access.ts";
import type { ServiceManager, ServiceStatus } from "./adapters/systemctl.ts";
import type { Config } from "./config.ts";
import { errorText } from "./errors.ts";
import type { ContainerInfo, Containers } from "./docker.ts";
import { type Heartbeat, isHeartbeatFresh } from "./watch/heartbeat.ts";
import { parseImageRef } from "./image_ref.ts";
import type { Logger } from "./log.ts";
import type { Clock } from "./state.ts";
import {
  describeUnfinished,
  findUnfinished,
  type UnfinishedDeps,
  type UnfinishedUpdate,
} from "./unfinished.ts";

/** A watcher that just started gets this long to write its first heartbeat. */
export const START_GRACE_MS = 90_000;
/** How long a repair waits for the service to become active. */
export const REPAIR_WAIT_MS = 5_000;
/** How long a restarted watcher must stay up (same PID) to count as repaired. */
export const REPAIR_SETTLE_MS = 2_000;
/** How long a repair waits for the new watcher's first heartbeat (not required for success). */
export const HEARTBEAT_WAIT_MS = 5_000;

export interface HealthDeps {
  services: ServiceManager;
  heartbeat: { read(): Promise<Heartbeat | null> };
  docker: Pick<Containers, "inspectContainer">;
  clock: Clock;
  logger: Logger;
  /** The update journal and lock: an update a killed process left unfinished is a problem. */
  unfinished?: UnfinishedDeps;
}

export interface HealthOptions {
  /** Restart a stopped, failed or hung watcher (default true). */
  fix?: boolean;
}

/**
 * - `ok`: active and the heartbeat is fresh
 * - `starting`: active or activating for less than START_GRACE_MS, no fresh heartbeat yet
 * - `restarting`: systemd is about to restart it (Restart=)
 * - `stopped`, `failed`: not running
 * - `hung`: active, but the heartbeat is stale or from another process
 * - `stopping`: a stop is in progress (an update may be finishing)
 * - `not_installed`: systemd does not know the unit
 * - `unknown`: systemd could not be asked
 */
export type WatcherVerdict =
  | "ok"
  | "starting"
  | "restarting"
  | "stopped"
  | "failed"
  | "hung"
  | "stopping"
  | "not_installed"
  | "unknown";

export type RepairAction = "none" | "restart" | "kill_and_restart";

export interface ServiceSummary {
  unit: string;
  loadState: string;
  activeState: string;
  subState: string;
  enabled: boolean;
  unitFileState: string;
  activeSince: string | null;
  mainPid: number;
  restarts: number;
}

export interface HeartbeatSummary {
  timestamp: string;
  ageSeconds: number | null;
  pid: number;
  state: string;
  fresh: boolean;
  /**
   * Whether the heartbeat comes from the service's running process: fresh, the service active
   * and its main pid the heartbeat's (a killed watcher's last heartbeat stays fresh a while,
   * naming a dead pid and, say, "updating").
   */
  live: boolean;
}

export interface ContainerSummary {
  name: string;
  found: boolean;
  running: boolean;
  /** `running`, `exited`, `restarting`…, `missing`, or `unknown` when Docker failed. */
  status: string;
  /** `healthy`, `unhealthy`, `starting`, or null without a HEALTHCHECK. */
  health: string | null;
  image: string | null;
  imageId: string | null;
  /** org.opencontainers.image.version, else the tag of the image reference. */
  version: string | null;
  startedAt: string | null;
  restartCount: number;
  error: string | null;
}

export interface HealthReport {
  ok: boolean;
  checkedAt: string;
  verdict: WatcherVerdict;
  service: ServiceSummary | null;
  serviceError: string | null;
  heartbeat: HeartbeatSummary | null;
  repair: {
    action: RepairAction;
    attempted: boolean;
    succeeded: boolean | null;
    detail: string | null;
  };
  container: ContainerSummary;
  /** An update the journal holds with no process running it (a killed update), or null. */
  unfinished: UnfinishedUpdate | null;
  /** What is wrong, one sentence each; empty when ok. */
  problems: string[];
  /**
   * What the config asks of the watcher and its unit forbids (unit_access.ts): said, but not a
   * failure of health (exit 0; `install --apply` repairs it, not health).
   */
  warnings: string[];
}

/** Decides what state the watcher is in. Pure. */
export function judgeWatcher(
  status: ServiceStatus | null,
  heartbeat: Heartbeat | null,
  now: Date,
): WatcherVerdict {
  if (status === null) return "unknown";
  if (status.loadState === "not-found") return "not_installed";
  const sinceMs = status.activeSince ? now.getTime() - status.activeSince.getTime() : Infinity;
  switch (status.activeState) {
    case "active":
    case "reloading": {
      const ours = heartbeat !== null && (status.mainPid === 0 || heartbeat.pid === status.mainPid);
      if (ours && isHeartbeatFresh(heartbeat, now)) return "ok";
      if (sinceMs < START_GRACE_MS) return "starting";
      return "hung";
    }
    case "activating":
      return status.subState === "auto-restart" ? "restarting" : "starting";
    case "deactivating":
      return "stopping";
    case "failed":
      return "failed";
    default:
      return "stopped";
  }
}

/** The repair a verdict calls for. Pure. */
export function repairFor(verdict: WatcherVerdict): RepairAction {
  switch (verdict) {
    case "stopped":
    case "failed":
    case "restarting":
      return "restart";
    case "hung":
      return "kill_and_restart";
    default:
      return "none";
  }
}

/** What status and health show of a container. Pure. */
export function summarizeContainer(name: string, info: ContainerInfo | null): ContainerSummary {
  if (info === null) {
    return {
      name,
      found: false,
      running: false,
      status: "missing",
      health: null,
      image: null,
      imageId: null,
      version: null,
      startedAt: null,
      restartCount: 0,
      error: null,
    };
  }
  return {
    name,
    found: true,
    running: info.running,
    status: info.status,
    health: info.health,
    image: info.imageRef,
    imageId: info.imageId,
    version: versionOf(info),
    startedAt: info.startedAt || null,
    restartCount: info.restartCount,
    error: null,
  };
}

/** org.opencontainers.image.version, else the tag of the reference, else null. */
export function versionOf(info: Pick<ContainerInfo, "labels" | "imageRef">): string | null {
  const label = info.labels?.["org.opencontainers.image.version"];
  if (label) return label;
  try {
    const ref = parseImageRef(info.imageRef);
    return ref.tag ?? null;
  } catch {
    return null;
  }
}

export function summarizeService(status: ServiceStatus): ServiceSummary {
  return {
    unit: status.unit,
    loadState: status.loadState,
    activeState: status.activeState,
    subState: status.subState,
    enabled: status.unitFileState === "enabled",
    unitFileState: status.unitFileState,
    activeSince: status.activeSince?.toISOString() ?? null,
    mainPid: status.mainPid,
    restarts: status.restarts,
  };
}

export function summarizeHeartbeat(
  heartbeat: Heartbeat | null,
  now: Date,
  service: ServiceStatus | null,
): HeartbeatSummary | null {
  if (heartbeat === null) return null;
  const at = Date.parse(heartbeat.timestamp);
  return {
    timestamp: heartbeat.timestamp,
    ageSeconds: Number.isFinite(at) ? Math.round((now.getTime() - at) / 100) / 10 : null,
    pid: heartbeat.pid,
    state: heartbeat.state,
    fresh: isHeartbeatFresh(heartbeat, now),
    live: isHeartbeatLive(service, heartbeat, now),
  };
}

/** Fresh, and written by the service's running process (see HeartbeatSummary.live). Pure. */
export function isHeartbeatLive(
  service: ServiceStatus | null,
  heartbeat: Heartbeat | null,
  now: Date,
): boolean {
  if (!heartbeat || !isHeartbeatFresh(heartbeat, now)) return false;
  if (service === null) return true; // systemd could not be asked: the heartbeat is all we know
  return (service.activeState === "active" || service.activeState === "reloading") &&
    (service.mainPid === 0 || service.mainPid === heartbeat.pid);
}

/** Reads the container, turning a Docker failure into a summary that says so. */
export async function inspectContainerSafely(
  docker: Pick<Containers, "inspectContainer">,
  name: string,
): Promise<ContainerSummary> {
  try {
    return summarizeContainer(name, await docker.inspectContainer(name));
  } catch (err) {
    return { ...summarizeContainer(name, null), status: "unknown", error: errorText(err) };
  }
}

/** Checks the watcher and the bot, repairs the watcher when allowed. Never throws for what it finds. */
export async function checkHealth(
  deps: HealthDeps,
  config: Pick<Config, "service" | "container"> & Partial<Pick<Config, "notify" | "metricsFile">>,
  options: HealthOptions = {},
): Promise<HealthReport> {
  const fix = options.fix ?? true;
  const unit = `${config.service}.service`;
  const [statusResult, heartbeat, container, unfinished] = await Promise.all([
    deps.services.status(unit).then(
      (s) => ({ status: s, error: null }),
      (err: unknown) => ({ status: null, error: errorText(err) }),
    ),
    deps.heartbeat.read().catch(() => null),
    inspectContainerSafely(deps.docker, config.container),
    deps.unfinished ? findUnfinished(deps.unfinished, unit) : Promise.resolve(null),
  ]);
  const now = deps.clock.now();
  const verdict = judgeWatcher(statusResult.status, heartbeat, now);
  const action = repairFor(verdict);
  const report: HealthReport = {
    ok: false,
    checkedAt: now.toISOString(),
    verdict,
    service: statusResult.status ? summarizeService(statusResult.status) : null,
    serviceError: statusResult.error,
    heartbeat: summarizeHeartbeat(heartbeat, now, statusResult.status),
    repair: { action, attempted: false, succeeded: null, detail: null },
    container,
    unfinished,
    problems: [],
    warnings: unitAccessProblems(statusResult.status?.access, {
      service: config.service,
      notify: config.notify ?? [],
      metricsFile: config.metricsFile ?? "",
    }),
  };
  for (const warning of report.warnings) {
    deps.logger.warn(warning, { service: unit, hint: unitAccessHint(null) });
  }
  const fields = {
    service: unit,
    verdict,
    state: statusResult.status?.activeState,
    heartbeat_age: report.heartbeat?.ageSeconds,
    container: config.container,
    container_state: container.status,
  };

  let watcherOk = verdict === "ok" || verdict === "starting";
  if (!watcherOk) report.problems.push(describeVerdict(verdict, unit, statusResult.error));

  if (action !== "none" && fix) {
    deps.logger.warn(`watcher is ${verdict}; repairing`, { ...fields, action });
    report.repair.attempted = true;
    const result = await repair(deps, unit, action, statusResult.status);
    report.repair.succeeded = result.ok;
    report.repair.detail = result.detail;
    if (result.ok) {
      watcherOk = true;
      deps.logger.warn("watcher repaired", { service: unit, action, detail: result.detail });
    } else {
      report.problems.push(`repair failed: ${result.detail}`);
      deps.logger.error("watcher could not be repaired", {
        service: unit,
        action,
        detail: result.detail,
      });
    }
  } else if (action !== "none") {
    deps.logger.warn(`watcher is ${verdict}; not repairing (--no-fix)`, fields);
  } else if (!watcherOk) {
    deps.logger.error(report.problems[0], fields);
  }

  // During an update the bot is stopped or renamed for a moment; that is not a fault. A killed
  // watcher's last heartbeat says "updating" too: only the live process's counts.
  const updating = heartbeat?.state === "updating" &&
    isHeartbeatLive(statusResult.status, heartbeat, now);
  let containerOk = container.running || updating;
  if (container.running && container.health === "unhealthy") containerOk = false;
  if (!containerOk) {
    report.problems.push(describeContainer(container));
    deps.logger.error(describeContainer(container), {
      container: config.container,
      container_state: container.status,
      health: container.health,
    });
  }

  if (unfinished) {
    report.problems.push(describeUnfinished(unfinished));
    deps.logger.error("an update was interrupted; the journal holds it unfinished", {
      update: unfinished.id,
      step: unfinished.step,
    });
  }

  report.ok = watcherOk && containerOk && unfinished === null;
  if (report.ok && !report.repair.attempted) deps.logger.info("all well", fields);
  return report;
}

async function repair(
  deps: HealthDeps,
  unit: string,
  action: RepairAction,
  before: ServiceStatus | null,
): Promise<{ ok: boolean; detail: string }> {
  try {
    if (action === "kill_and_restart") {
      // A hung process may not react to SIGTERM; systemd would wait TimeoutStopSec for it.
      await deps.services.kill(unit, "SIGKILL");
    }
    if (before?.activeState === "failed") await deps.services.resetFailed(unit);
    await deps.services.restart(unit);
  } catch (err) {
    return { ok: false, detail: errorText(err) };
  }
  const started = await waitFor(deps.clock, REPAIR_WAIT_MS, async () => {
    const s = await deps.services.status(unit).catch(() => null);
    return s && s.activeState === "active" && s.mainPid > 0 ? s : null;
  });
  if (!started) return { ok: false, detail: `${unit} did not become active` };
  await deps.clock.sleep(REPAIR_SETTLE_MS);
  const settled = await deps.services.status(unit).catch(() => null);
  if (!settled || settled.activeState !== "active" || settled.mainPid !== started.mainPid) {
    return {
      ok: false,
      detail: `${unit} started but did not stay up (now ${
        settled?.activeState ?? "unknown"
      }); see 'journalctl -u ${unit}'`,
    };
  }
  const beat = await waitFor(deps.clock, HEARTBEAT_WAIT_MS, async () => {
    const hb = await deps.heartbeat.read().catch(() => null);
    return hb && hb.pid === settled.mainPid ? hb : null;
  });
  return {
    ok: true,
    detail:
      `${
        action === "kill_and_restart" ? "killed and restarted" : "restarted"
      }; pid ${settled.mainPid}` +
      (beat ? `, heartbeat ${beat.state}` : ", no heartbeat yet"),
  };
}

async function waitFor<T>(
  clock: Clock,
  timeoutMs: number,
  probe: () => Promise<T | null>,
): Promise<T | null> {
  const deadline = clock.now().getTime() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (clock.now().getTime() >= deadline) return null;
    await clock.sleep(250);
  }
}

function describeVerdict(verdict: WatcherVerdict, unit: string, error: string | null): string {
  switch (verdict) {
    case "not_installed":
      return `${unit} is not installed (run 'hyperbot-ops install --apply')`;
    case "unknown":
      return `cannot ask systemd about ${unit}: ${error ?? "unknown error"}`;
    case "hung":
      return `the watcher of ${unit} is hung: its heartbeat is stale or missing`;
    case "restarting":
      return `${unit} crashed and is waiting to be restarted`;
    case "stopping":
      return `${unit} is stopping (an update may be finishing); check again later`;
    default:
      return `${unit} is ${verdict}`;
  }
}

function describeContainer(c: ContainerSummary): string {
  if (c.error) return `cannot inspect the bot container '${c.name}': ${c.error}`;
  if (!c.found) return `the bot container '${c.name}' does not exist`;
  if (c.running && c.health === "unhealthy") return `the bot container '${c.name}' is unhealthy`;
  return `the bot container '${c.name}' is not running (${c.status}); health does not restart the bot`;
}

/** Two or three lines for a person (or for cron's mail). Pure. */
export function renderHealth(report: HealthReport): string {
  const lines: string[] = [];
  const unit = report.service?.unit ?? "the monitor service";
  const beat = report.heartbeat
    ? `heartbeat ${report.heartbeat.ageSeconds ?? "?"} s ago (${report.heartbeat.state})`
    : "no heartbeat";
  if (report.repair.attempted) {
    const mark = report.repair.succeeded ? "🔧" : "❌";
    lines.push(`${mark} watcher was ${report.verdict}: ${report.repair.detail}`);
  } else if (report.verdict === "ok" || report.verdict === "starting") {
    const since = report.service?.activeSince ? ` since ${report.service.activeSince}` : "";
    lines.push(`✅ watcher: ${unit} active${since}, ${beat}`);
  } else {
    lines.push(`❌ watcher: ${report.problems[0] ?? report.verdict}`);
  }
  const c = report.container;
  const cOk = c.running && c.health !== "unhealthy";
  const detail = c.found
    ? `${c.status}${c.health ? `, ${c.health}` : ""}${c.version ? `, version ${c.version}` : ""}`
    : c.error
    ? `unknown: ${c.error}`
    : "missing";
  lines.push(`${cOk ? "✅" : "❌"} bot: ${c.name} ${detail}`);
  if (report.unfinished) lines.push(`❌ update: ${describeUnfinished(report.unfinished)}`);
  for (const warning of report.warnings ?? []) {
    lines.push(`⚠️ unit: ${warning}; ${unitAccessHint(null)}`);
  }
  return lines.join("\n");
}
