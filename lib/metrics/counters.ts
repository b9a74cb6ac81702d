/**
 * The counters the metrics keep in `<stateDir>/metrics.json`, so they survive restarts and
 * several processes (watch, update, health) add to the same ones. Pure: events are applied to
 * a copy; the store (lib/adapters/metrics_files.ts) does the locked read-modify-write.
 */

import type { Outcome } from "../update/report.ts";

export const OUTCOMES: readonly Outcome[] = [
  "updated",
  "unchanged",
  "rolled_back",
  "failed",
  "rejected",
];

export interface Counters {
  updates: Record<Outcome, number>;
  /** Epoch seconds when an update last ended with each outcome. */
  lastUpdateAt: Partial<Record<Outcome, number>>;
  /** The last update that ran (not a rejection). */
  lastUpdate: { durationSeconds: number; downtimeSeconds: number | null } | null;
  healthRepairs: number;
  /** Epoch seconds of the last health run. */
  healthLastRunAt: number | null;
  triggersRejected: number;
}

/** Something that changes the counters. Times are ISO 8601 strings or Dates. */
export type MetricsEvent =
  | {
    kind: "update";
    outcome: Outcome;
    finishedAt: string;
    durationMs?: number | null;
    downtimeMs?: number | null;
  }
  /** A trigger the watcher refused (counts as a rejected update too). */
  | { kind: "trigger_rejected"; at: string }
  | { kind: "health"; at: string; repaired: boolean };

export function emptyCounters(): Counters {
  return {
    updates: { updated: 0, unchanged: 0, rolled_back: 0, failed: 0, rejected: 0 },
    lastUpdateAt: {},
    lastUpdate: null,
    healthRepairs: 0,
    healthLastRunAt: null,
    triggersRejected: 0,
  };
}

/** The counters after `event`. Does not change its argument. */
export function applyEvent(counters: Counters, event: MetricsEvent): Counters {
  const c = structuredClone(counters);
  switch (event.kind) {
    case "update": {
      c.updates[event.outcome]++;
      c.lastUpdateAt[event.outcome] = seconds(event.finishedAt) ?? c.lastUpdateAt[event.outcome];
      if (event.outcome !== "rejected" && typeof event.durationMs === "number") {
        c.lastUpdate = {
          durationSeconds: event.durationMs / 1000,
          downtimeSeconds: typeof event.downtimeMs === "number" ? event.downtimeMs / 1000 : null,
        };
      }
      return c;
    }
    case "trigger_rejected":
      c.triggersRejected++;
      c.updates.rejected++;
      c.lastUpdateAt.rejected = seconds(event.at) ?? c.lastUpdateAt.rejected;
      return c;
    case "health":
      if (event.repaired) c.healthRepairs++;
      c.healthLastRunAt = seconds(event.at) ?? c.healthLastRunAt;
      return c;
  }
}

/**
 * Counters from the stored JSON: every field checked, anything missing or malformed starts
 * from zero (a counter reset, which Prometheus' rate() handles), never an exception.
 */
export function parseCounters(data: unknown): Counters {
  const c = emptyCounters();
  if (!isObject(data)) return c;
  const updates = isObject(data.updates) ? data.updates : {};
  const lastAt = isObject(data.lastUpdateAt) ? data.lastUpdateAt : {};
  for (const outcome of OUTCOMES) {
    c.updates[outcome] = count(updates[outcome]);
    const at = lastAt[outcome];
    if (isTime(at)) c.lastUpdateAt[outcome] = at;
  }
  const last = data.lastUpdate;
  if (isObject(last) && isTime(last.durationSeconds)) {
    c.lastUpdate = {
      durationSeconds: last.durationSeconds,
      downtimeSeconds: isTime(last.downtimeSeconds) ? last.downtimeSeconds : null,
    };
  }
  c.healthRepairs = count(data.healthRepairs);
  c.healthLastRunAt = isTime(data.healthLastRunAt) ? data.healthLastRunAt : null;
  c.triggersRejected = count(data.triggersRejected);
  return c;
}

function seconds(iso: string): number | null {
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms / 1000 : null;
}

function count(value: unknown): number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : 0;
}

function isTime(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
