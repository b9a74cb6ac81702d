/**
 * What operators hear about, as one flat document: the webhook's JSON body (schema 1, a
 * documented contract) and what every other channel's text is rendered from. Pure.
 */

import type { Outcome, UpdateReport } from "../update/report.ts";
import { printable } from "../printable.ts";

export type EventName =
  | "update"
  | "rollback_unfinished"
  | "rollback_finished"
  | "watcher_restarted"
  | "watcher_restart_failed"
  | "docker_unreachable"
  | "docker_reachable"
  | "test";

/** At most this many of the failed container's last log lines go into a message. */
export const LOG_TAIL_LINES = 10;
/** Each of them is cut to this many characters. */
export const LOG_LINE_MAX = 160;
/** An error is cut to this many characters. */
export const ERROR_MAX = 500;

/** The webhook body, schema 1. Fields that do not apply to an event are null (lists empty). */
export interface Notification {
  schema: 1;
  /** Unique per notification; the same on every retry, so a receiver can drop duplicates. */
  id: string;
  event: EventName;
  /** When it happened (ISO 8601). */
  at: string;
  host: string;
  container: string;
  outcome: Outcome | null;
  image: string | null;
  previousImage: string | null;
  imageId: string | null;
  previousImageId: string | null;
  requestId: string | null;
  /** Our id of the update. */
  updateId: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  /** Old container stopped → new container started (null when the bot was not stopped). */
  downtimeMs: number | null;
  error: string | null;
  /** The failed new container's last output lines, printable and length-capped. */
  logTail: string[];
  /**
   * The update's warnings, printable and length-capped: for a docker compose bot, the compose
   * file it could not pin (the file and line to edit). May be absent in an older outbox entry.
   */
  warnings?: string[];
  /** What health or the Docker watch saw (watcher and Docker events). */
  detail: string | null;
  /** How many events this message stands for (a burst of rejected triggers); 1 otherwise. */
  count: number;
}

export function newNotification(
  fields: Partial<Notification> & { event: EventName; at: string; host: string; container: string },
): Notification {
  return {
    schema: 1,
    id: `ntf-${fields.at.replace(/[-:.TZ]/g, "").slice(0, 14)}-${crypto.randomUUID().slice(0, 8)}`,
    outcome: null,
    image: null,
    previousImage: null,
    imageId: null,
    previousImageId: null,
    requestId: null,
    updateId: null,
    startedAt: null,
    finishedAt: null,
    durationMs: null,
    downtimeMs: null,
    error: null,
    logTail: [],
    warnings: [],
    detail: null,
    count: 1,
    ...fields,
  };
}

/** The update's part of a notification. Text from the container or a registry is made printable. */
export function updateFields(report: UpdateReport): Partial<Notification> {
  return {
    container: report.container,
    outcome: report.outcome,
    image: report.image === null ? null : printable(report.image, 200),
    previousImage: report.previousImage === null ? null : printable(report.previousImage, 200),
    imageId: report.imageId,
    previousImageId: report.previousImageId,
    requestId: report.requestId ?? null,
    updateId: report.id,
    startedAt: report.startedAt,
    finishedAt: report.finishedAt,
    durationMs: report.durationMs,
    downtimeMs: report.downtimeMs,
    error: report.error === null ? null : printable(report.error, ERROR_MAX),
    logTail: cleanLogTail(report.logTail ?? []),
    warnings: report.warnings.slice(0, 5).map((w) => printable(w, ERROR_MAX)),
  };
}

/** The last LOG_TAIL_LINES non-empty lines, each printable and at most LOG_LINE_MAX long. */
export function cleanLogTail(lines: string[]): string[] {
  return lines
    .flatMap((l) => l.split(/\r?\n/))
    .filter((l) => l.trim() !== "")
    .slice(-LOG_TAIL_LINES)
    .map((l) => printable(l, LOG_LINE_MAX));
}
