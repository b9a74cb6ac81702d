/**
 * The data every surface renders: the update report, the status file the bot reads,
 * and the journal a restarted process recovers from.
 */

export type Outcome = "updated" | "unchanged" | "rolled_back" | "failed" | "rejected";

/** `state` in `<dataDir>/.update_status.json`: progress while running, then the result. */
export type UpdateState =
  | "pulling"
  | "creating"
  | "stopping"
  | "starting"
  | "verifying"
  | "succeeded"
  | "unchanged"
  | "rolled_back"
  | "failed"
  | "rejected";

/** The update's steps, in order. Each is written to the journal before it runs. */
export const STEPS = [
  "inspect",
  "pull",
  "compare",
  "create",
  "stop",
  "rename",
  "start",
  "verify",
  "cleanup",
] as const;
export type StepName = (typeof STEPS)[number] | "rollback";

export interface StepRecord {
  name: StepName;
  startedAt: string;
  finishedAt?: string;
  ok?: boolean;
  detail?: string;
}

export interface UpdateReport {
  /** Our id of this update. */
  id: string;
  /** The caller's request id (from a JSON trigger), echoed back. */
  requestId?: string;
  outcome: Outcome;
  container: string;
  /** The image asked for. */
  image: string | null;
  /** The image the container ran before. */
  previousImage: string | null;
  /** The image ID the container runs after the update. */
  imageId: string | null;
  previousImageId: string | null;
  startedAt: string;
  finishedAt: string;
  /** From startedAt to finishedAt. */
  durationMs: number;
  /**
   * How long the bot was not running, measured by the update: from the old container's stop to
   * the new one's start; after a rollback, to the old one's start again. 0 when the bot was
   * never stopped (or was not running before); null when no bot container runs at the end.
   */
  downtimeMs: number | null;
  error: string | null;
  warnings: string[];
  steps: StepRecord[];
  /**
   * After a rollback: the failed new container's last output lines (at most 10, as the
   * container printed them: untrusted, shown only through printable()).
   */
  logTail?: string[];
}

/** The status file the bot reads. Written atomically. */
export interface StatusFile {
  id: string;
  requestId?: string;
  state: UpdateState;
  container: string;
  image: string | null;
  previousImage: string | null;
  imageId: string | null;
  startedAt: string;
  finishedAt: string | null;
  /** Set when the update has ended (see UpdateReport); absent in files of older versions. */
  durationMs?: number | null;
  downtimeMs?: number | null;
  error: string | null;
  warnings: string[];
  steps: StepRecord[];
}

export function stateOfOutcome(outcome: Outcome): UpdateState {
  return outcome === "updated" ? "succeeded" : outcome;
}

export function statusOfReport(report: UpdateReport): StatusFile {
  return {
    id: report.id,
    ...(report.requestId ? { requestId: report.requestId } : {}),
    state: stateOfOutcome(report.outcome),
    container: report.container,
    image: report.image,
    previousImage: report.previousImage,
    imageId: report.imageId,
    startedAt: report.startedAt,
    finishedAt: report.finishedAt,
    durationMs: report.durationMs,
    downtimeMs: report.downtimeMs,
    error: report.error,
    warnings: report.warnings,
    steps: report.steps,
  };
}

/** What an update knows beyond its journal: how it ended, and what it found on the way. */
export interface UpdateResult {
  outcome: Outcome;
  /** The image ID the container runs after the update. */
  imageId: string | null;
  finishedAt: string;
  /** See UpdateReport.downtimeMs. */
  downtimeMs: number | null;
  error: string | null;
  warnings: string[];
}

/**
 * The report of the update a journal records: the journal is the one record of what the
 * update did (which images, which steps), the result says how it ended. A running update and
 * recovery after a kill both derive their report this way.
 */
export function reportOfJournal(journal: JournalEntry, result: UpdateResult): UpdateReport {
  return {
    id: journal.id,
    ...(journal.requestId ? { requestId: journal.requestId } : {}),
    outcome: result.outcome,
    container: journal.container,
    image: journal.image,
    previousImage: journal.previousImage,
    imageId: result.imageId,
    previousImageId: journal.previousImageId,
    startedAt: journal.startedAt,
    finishedAt: result.finishedAt,
    durationMs: elapsedMs(journal.startedAt, result.finishedAt),
    downtimeMs: result.downtimeMs,
    error: result.error,
    warnings: result.warnings,
    steps: journal.steps,
  };
}

/** Milliseconds between two ISO timestamps (never negative). */
export function elapsedMs(startedAt: string, finishedAt: string): number {
  return Math.max(0, Date.parse(finishedAt) - Date.parse(startedAt));
}

/** Exit code of an update outcome: 0 updated/unchanged, 1 rolled back or failed, 2 rejected. */
export function exitCodeOfOutcome(outcome: Outcome): number {
  switch (outcome) {
    case "updated":
    case "unchanged":
      return 0;
    case "rejected":
      return 2;
    default:
      return 1;
  }
}

/**
 * The journal of the update in progress, in `<stateDir>/journal.json`. Written before each
 * step; removed when the update has ended. What a restarted process needs to finish or undo it.
 */
export interface JournalEntry {
  id: string;
  requestId?: string;
  pid: number;
  startedAt: string;
  container: string;
  /** The step about to run (or running) when the journal was written. */
  step: StepName;
  /** Whether the new container passed verification (then recovery goes forward, else back). */
  verified: boolean;
  image: string | null;
  previousImage: string | null;
  previousImageId: string | null;
  oldContainerId: string | null;
  /** Whether the old container was running before the update (rollback restarts it only then). */
  oldWasRunning: boolean;
  /**
   * The old container's restart policy. The update sets it to "no" before stopping the
   * container (so a daemon restart cannot run it beside the new one) and rollback restores it.
   */
  oldRestartPolicy: { Name: string; MaximumRetryCount?: number } | null;
  newContainerId: string | null;
  /**
   * Set just before the result is written: the containers are in their final state and only
   * the status file and the journal's removal are left. (Recovery trusts this, never the status
   * file, which the bot's container can write.)
   */
  finished?: boolean;
  tempName: string;
  previousName: string;
  steps: StepRecord[];
}

/** The last successful update, kept in `<stateDir>/last-update.json` for `update --rollback`. */
export interface LastUpdate {
  id: string;
  container: string;
  finishedAt: string;
  image: string;
  imageId: string;
  previousImage: string;
  previousImageId: string;
  /** Image IDs deployed to this container, newest first (for keepImages). */
  recentImageIds?: string[];
}
