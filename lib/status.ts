/**
 * `hyperbot-ops status`: one screen for a person, or JSON for machines. Gathers the service,
 * the cron entry, the watcher's heartbeat, the bot container, the last update and the tails
 * of the three logs; renders them with ✅/❌ marks. Changes nothing.
 */

import { healthCronLines } from "./adapters/crontab.ts";
import { healthCronLinesFor } from "./install/cron.ts";
import { unitAccessHint, unitAccessProblems } from "./install/unit_access.ts";
import type { ServiceManager } from "./adapters/systemctl.ts";
import type { Config } from "./config.ts";
import { errorText } from "./errors.ts";
import type { Containers } from "./docker.ts";
import {
  type ContainerSummary,
  type HeartbeatSummary,
  inspectContainerSafely,
  judgeWatcher,
  type ServiceSummary,
  summarizeHeartbeat,
  summarizeService,
  type WatcherVerdict,
} from "./health.ts";
import type { Heartbeat } from "./watch/heartbeat.ts";
import { LOG_FILES } from "./log.ts";
import type { StatusFile, UpdateState } from "./update/report.ts";
import type { Clock, UpdateRecordStore } from "./state.ts";
import { findUnfinished, type UnfinishedDeps, type UnfinishedUpdate } from "./unfinished.ts";
import { printable, printableFields } from "./printable.ts";
import type { ComposeAgreement } from "./compose/pin.ts";
import type { ChannelStatus } from "./notify/notifier.ts";

export const LOG_TAIL_LINES = 5;

export interface StatusDeps {
  services: ServiceManager;
  cron: { readonly path: string; read(): Promise<string | null> };
  heartbeat: { read(): Promise<Heartbeat | null> };
  docker: Pick<Containers, "inspectContainer">;
  /**
   * Root's records in stateDir of the last ended update and the last rejection; never the
   * status file in dataDir, which the bot's container can write.
   */
  records: Pick<UpdateRecordStore, "lastUpdate" | "lastRejection">;
  /** The update journal and lock: an update a killed process left unfinished. */
  unfinished: UnfinishedDeps;
  /** The last `lines` lines of a log file, or null when it does not exist. */
  tail(path: string, lines: number): Promise<string[] | null>;
  clock: Clock;
  /**
   * Whether the bot's compose project names the image it runs; null when compose does not
   * manage it (or `compose` is `off`). Absent: not checked.
   */
  compose?: (container: string) => Promise<ComposeAgreement | null>;
  /** Per notification channel (and the ping), the last delivery and failure. Absent: none. */
  notify?: () => Promise<ChannelStatus[]>;
}

export interface StatusReport {
  ok: boolean;
  checkedAt: string;
  service: (ServiceSummary & { ok: boolean; enabledOk: boolean; error: null }) | {
    ok: false;
    enabledOk: false;
    error: string;
  };
  /**
   * `present`: the file holds a health entry; `ok`: one for this config file (`config`), whose
   * lines are `lines`. A second bot's entry does not count for the first.
   */
  cron: { ok: boolean; path: string; present: boolean; config: string; lines: string[] };
  watcher: { ok: boolean; verdict: WatcherVerdict; heartbeat: HeartbeatSummary | null };
  /**
   * Whether the loaded unit lets the watcher do what the config asks (notify: network;
   * metricsFile: its folder writable). `problems` empty when it does or systemd did not say.
   */
  access: { ok: boolean; problems: string[]; hint: string | null };
  container: ContainerSummary & { ok: boolean };
  /** For a compose-managed bot: does the compose file name the running image? (ok: not known to differ) */
  compose: (ComposeAgreement & { ok: boolean }) | null;
  /** Notification channels; empty when none are configured. Secrets are shown as ***. */
  notify: ChannelStatus[];
  lastUpdate:
    | (
      & Pick<
        StatusFile,
        "id" | "state" | "image" | "previousImage" | "startedAt" | "finishedAt" | "error"
      >
      & { ok: boolean }
    )
    | null;
  /** The last rejected trigger, when it is at most REJECTION_RECENT_MS old (not a fault). */
  lastRejection:
    | Pick<StatusFile, "id" | "requestId" | "image" | "finishedAt" | "error">
    | null;
  /** An update the journal holds with no process running it (a killed update): a fault. */
  unfinished: UnfinishedUpdate | null;
  logs: Record<"monitor" | "update" | "health", { path: string; lines: string[] | null }>;
}

/** How long the last rejected trigger is shown. */
export const REJECTION_RECENT_MS = 24 * 3600_000;

// A rejected trigger is the bot's input, not a fault of this server: shown, but not an error.
const FAILED_STATES: UpdateState[] = ["failed", "rolled_back"];
const KNOWN_STATES: UpdateState[] = [
  "pulling",
  "creating",
  "stopping",
  "starting",
  "verifying",
  "succeeded",
  "unchanged",
  "rolled_back",
  "failed",
  "rejected",
];

/** The most characters of one field, and of one log line, status shows. */
const MAX_FIELD = 300;
const MAX_LOG_LINE = 1000;

/**
 * A field of the status file, which the bot's container can write: whatever it holds (a string,
 * an array of escapes, an object), it comes out as printable text, or null when absent.
 */
function cleanText(value: unknown): string | null {
  return value === null || value === undefined ? null : printable(value, MAX_FIELD);
}

/** Log lines, however they got into the file, made printable one by one. */
function cleanLines(lines: string[] | null): string[] | null {
  return lines === null ? null : lines.map((line) => printable(line, MAX_LOG_LINE));
}

/** Gathers everything side by side. Never throws for what it finds. */
export async function gatherStatus(
  deps: StatusDeps,
  config: Pick<Config, "service" | "container" | "logDir" | "notify" | "metricsFile"> & {
    /** The config file (absolute) whose health entry counts. */
    configFile: string;
  },
  options: { logLines?: number } = {},
): Promise<StatusReport> {
  const unit = `${config.service}.service`;
  const n = options.logLines ?? LOG_TAIL_LINES;
  const logPath = (file: string | null) => `${config.logDir}/${file}`;
  const [
    status,
    cronText,
    heartbeat,
    container,
    last,
    rejection,
    unfinished,
    monitor,
    update,
    health,
    compose,
    notify,
  ] = await Promise.all([
    deps.services.status(unit).then((s) => s, (err: Error) => err),
    deps.cron.read().catch(() => null),
    deps.heartbeat.read().catch(() => null),
    inspectContainerSafely(deps.docker, config.container),
    deps.records.lastUpdate().catch(() => null),
    deps.records.lastRejection().catch(() => null),
    findUnfinished(deps.unfinished, unit),
    deps.tail(logPath(LOG_FILES.watch), n).catch(() => null),
    deps.tail(logPath(LOG_FILES.update), n).catch(() => null),
    deps.tail(logPath(LOG_FILES.health), n).catch(() => null),
    deps.compose ? deps.compose(config.container).catch(() => null) : Promise.resolve(null),
    deps.notify ? deps.notify().catch(() => []) : Promise.resolve([]),
  ]);
  const now = deps.clock.now();
  const serviceStatus = status instanceof Error ? null : status;
  const verdict = judgeWatcher(serviceStatus, heartbeat, now);
  const service: StatusReport["service"] = serviceStatus
    ? {
      ...summarizeService(serviceStatus),
      ok: serviceStatus.activeState === "active",
      enabledOk: serviceStatus.unitFileState === "enabled",
      error: null,
    }
    : { ok: false, enabledOk: false, error: errorText(status) };
  const cronLines = healthCronLinesFor(cronText, config.configFile);
  const accessProblems = unitAccessProblems(serviceStatus?.access, config);
  const report: StatusReport = {
    ok: false,
    checkedAt: now.toISOString(),
    service,
    cron: {
      ok: cronLines.length > 0,
      path: deps.cron.path,
      present: healthCronLines(cronText).length > 0,
      config: config.configFile,
      lines: cronLines,
    },
    watcher: {
      ok: verdict === "ok" || verdict === "starting",
      verdict,
      heartbeat: summarizeHeartbeat(heartbeat, now, serviceStatus),
    },
    access: {
      ok: accessProblems.length === 0,
      problems: accessProblems,
      hint: accessProblems.length > 0 ? unitAccessHint(config.configFile) : null,
    },
    container: {
      ...container,
      ok: container.running && container.health !== "unhealthy",
    },
    compose: compose ? { ...compose, ok: compose.agrees !== false } : null,
    notify,
    // Root's record, but its text can quote a registry or a container (an error, an image the
    // bot asked for): it reaches the terminal only without control characters, and an unknown
    // state is not taken for a good one.
    lastUpdate: last
      ? {
        id: cleanText(last.id) ?? "?",
        state: KNOWN_STATES.includes(last.state) ? last.state : "failed",
        image: cleanText(last.image),
        previousImage: cleanText(last.previousImage),
        startedAt: cleanText(last.startedAt) ?? "?",
        finishedAt: cleanText(last.finishedAt),
        error: KNOWN_STATES.includes(last.state)
          ? cleanText(last.error)
          : `the status file holds an unknown state '${cleanText(String(last.state))}'`,
        ok: KNOWN_STATES.includes(last.state) && !FAILED_STATES.includes(last.state),
      }
      : null,
    lastRejection: rejection && isRecent(rejection.finishedAt, now, REJECTION_RECENT_MS)
      ? {
        id: cleanText(rejection.id) ?? "?",
        ...(rejection.requestId ? { requestId: cleanText(rejection.requestId) ?? "?" } : {}),
        image: cleanText(rejection.image),
        finishedAt: cleanText(rejection.finishedAt),
        error: cleanText(rejection.error),
      }
      : null,
    unfinished,
    logs: {
      monitor: { path: logPath(LOG_FILES.watch), lines: cleanLines(monitor) },
      update: { path: logPath(LOG_FILES.update), lines: cleanLines(update) },
      health: { path: logPath(LOG_FILES.health), lines: cleanLines(health) },
    },
  };
  // The container's labels, the engine's and systemd's answers: every string shown is printable.
  const safe = printableFields(report, MAX_FIELD);
  safe.logs = report.logs;
  safe.ok = safe.service.ok && safe.service.enabledOk && safe.cron.ok &&
    safe.watcher.ok && safe.access.ok && safe.container.ok && (safe.lastUpdate?.ok ?? true) &&
    (safe.compose?.ok ?? true) && safe.unfinished === null;
  return safe;
}

function isRecent(at: string | null, now: Date, ms: number): boolean {
  const t = at ? Date.parse(at) : NaN;
  return Number.isFinite(t) && now.getTime() - t <= ms;
}

export interface RenderOptions {
  /** ANSI bold headings; off when not a TTY or NO_COLOR is set. */
  color: boolean;
}

/** The screen. Pure. */
export function renderStatus(report: StatusReport, options: RenderOptions): string {
  const bold = (s: string) => options.color ? `\x1b[1m${s}\x1b[0m` : s;
  const dim = (s: string) => options.color ? `\x1b[2m${s}\x1b[0m` : s;
  const mark = (ok: boolean) => ok ? "✅" : "❌";
  const row = (m: string, label: string, text: string) => `${m} ${label.padEnd(12)} ${text}`;
  const now = Date.parse(report.checkedAt);
  const lines: string[] = [bold(`hyperbot-ops status  ${report.checkedAt}`), ""];

  const s = report.service;
  if (s.error !== null) {
    lines.push(row(mark(false), "Service", `cannot ask systemd: ${s.error}`));
  } else {
    const since = s.activeSince
      ? ` since ${s.activeSince} (${formatAge(now - Date.parse(s.activeSince))})`
      : "";
    const restarts = s.restarts > 0 ? `, restarted ${s.restarts}×` : "";
    const state = s.loadState === "not-found"
      ? `${s.unit} is not installed`
      : `${s.unit} ${s.activeState} (${s.subState})${s.ok ? since : ""}${restarts}`;
    lines.push(row(mark(s.ok), "Service", state));
    lines.push(
      row(
        mark(s.enabledOk),
        "At boot",
        s.enabledOk ? "enabled" : s.unitFileState || "not installed",
      ),
    );
  }

  const c = report.cron;
  lines.push(
    row(
      mark(c.ok),
      "Cron",
      c.ok
        ? `${c.path}: ${c.lines[0]}`
        : c.present
        ? `the health entry in ${c.path} is for another config, not ${c.config}`
        : `no health entry in ${c.path}`,
    ),
  );

  const w = report.watcher;
  const hb = w.heartbeat;
  // A killed watcher's last heartbeat still says what it was doing: not what happens now.
  const beatState = hb && !hb.live && hb.state !== "stopped"
    ? `stale (last said ${hb.state}; pid ${hb.pid} is not the service's process)`
    : hb?.state;
  const beat = hb
    ? `heartbeat ${
      hb.ageSeconds === null ? "?" : formatAge(hb.ageSeconds * 1000)
    } ago, ${beatState}, pid ${hb.pid}`
    : "no heartbeat";
  lines.push(row(mark(w.ok), "Watcher", w.verdict === "ok" ? beat : `${w.verdict}: ${beat}`));

  for (const problem of report.access.problems) {
    lines.push(row(mark(false), "Unit", `${problem}; ${report.access.hint}`));
  }

  const k = report.container;
  const cState = k.error
    ? `cannot inspect: ${k.error}`
    : !k.found
    ? "missing"
    : `${k.status}${k.health ? `, ${k.health}` : ""}${
      k.running && k.startedAt ? ` since ${k.startedAt}` : ""
    }${k.restartCount > 0 ? `, ${k.restartCount} restarts` : ""}`;
  lines.push(row(mark(k.ok), "Container", `${k.name} ${cState}`));
  if (k.found) {
    lines.push(
      row("  ", "Image", `${k.image ?? "?"}${k.version ? `  version ${k.version}` : ""}`),
    );
  }

  const cp = report.compose;
  if (cp) {
    const at = cp.file ? `${cp.file}${cp.line ? ` line ${cp.line}` : ""}` : "";
    if (cp.agrees === true) {
      lines.push(row(mark(true), "Compose", `${at} names the running image`));
    } else if (cp.agrees === false) {
      lines.push(
        row(
          mark(false),
          "Compose",
          `${at} names ${cp.composeImage}, the container runs ${cp.runningImage}: ` +
            "'docker compose up -d' would change the version",
        ),
      );
    } else {
      lines.push(row("➖", "Compose", `cannot tell${at ? ` (${at})` : ""}: ${cp.reason}`));
    }
  }

  for (const c of report.notify) {
    const last = (r: { at: string } | null) => r?.at ?? "never";
    const failing = c.lastFailure !== null &&
      (c.lastDelivery === null || c.lastFailure.at > c.lastDelivery.at);
    const failure = c.lastFailure
      ? `, last failure ${c.lastFailure.at}: ${c.lastFailure.error ?? "?"}`
      : "";
    lines.push(
      row(
        failing ? "⚠️" : "  ",
        c.name === "ping" ? "Ping" : "Notify",
        `${c.name} (${c.type}) ${c.target}: last delivery ${last(c.lastDelivery)}${failure}`,
      ),
    );
  }

  const u = report.lastUpdate;
  if (u === null) {
    lines.push(row("➖", "Last update", "none recorded"));
  } else {
    const when = u.finishedAt ?? u.startedAt;
    const from = u.previousImage && u.previousImage !== u.image ? ` (from ${u.previousImage})` : "";
    const err = u.error ? `: ${u.error}` : "";
    lines.push(row(mark(u.ok), "Last update", `${u.state} ${when} ${u.image ?? ""}${from}${err}`));
  }
  const r = report.lastRejection;
  if (r) {
    const asked = r.image ? ` (asked for ${r.image})` : "";
    lines.push(row("➖", "Rejected", `trigger ${r.finishedAt ?? "?"}${asked}: ${r.error ?? "?"}`));
  }
  const f = report.unfinished;
  if (f) {
    lines.push(
      row(
        mark(false),
        "Unfinished",
        `update ${f.id} was interrupted at step ${f.step} (started ${f.startedAt}); ` +
          `the journal holds it`,
      ),
    );
    lines.push(row("  ", "", `hint: ${f.hint}`));
  }

  for (const [name, log] of Object.entries(report.logs)) {
    lines.push(
      "",
      bold(`── ${name === "health" ? "health-check" : name}.log`) + dim(`  ${log.path}`),
    );
    if (log.lines === null) lines.push(dim("   (no log file)"));
    else if (log.lines.length === 0) lines.push(dim("   (empty)"));
    else lines.push(...log.lines.map((l) => `   ${l}`));
  }
  lines.push("", report.ok ? "✅ all well" : "❌ something is wrong (see the ❌ lines above)");
  return lines.join("\n");
}

/** `42 s`, `5 min`, `3 h 12 min`, `2 d 4 h`. */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "?";
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 120) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ${min % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}
