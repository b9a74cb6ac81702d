/**
 * The update engine. (Being written: this file currently holds only the public signature.)
 */

import type { Config } from "./config.ts";
import type { CredentialStore, DockerEngine, PullProgress } from "./docker.ts";
import type { Logger } from "./log.ts";
import type { StepName, UpdateReport } from "./report.ts";
import type { Clock, JournalStore, LastUpdateStore, StatusStore, UpdateLock } from "./state.ts";

export interface UpdateDeps {
  docker: DockerEngine;
  credentials: CredentialStore;
  clock: Clock;
  logger: Logger;
  lock: UpdateLock;
  journal: JournalStore;
  status: StatusStore;
  lastUpdate: LastUpdateStore;
  /** Pull progress, for a TTY. */
  onPullProgress?: (progress: PullProgress) => void;
  /** Test hook: called after the journal records `step` and before it runs (kill -9 tests). */
  beforeStep?: (step: StepName) => void | Promise<void>;
}

export interface UpdateRequest {
  /** Image reference text; null/undefined = the image the container runs now. */
  image?: string | null;
  force?: boolean;
  /** Recreate on the image that ran before the last update (no pull). */
  rollback?: boolean;
  /** The caller's request id, echoed into the status file. */
  requestId?: string;
  /** Who asked: shown in the lock holder and logs. */
  source: "cli" | "trigger";
}

/**
 * Runs one update. Throws RejectedError (bad reference, repository not allowed) and
 * LockedError (another update runs) before anything is touched. Every other failure is a
 * report with outcome "failed" (the bot untouched) or "rolled_back" (the old container back).
 * Writes the status file and history as it goes.
 */
export function runUpdate(
  _deps: UpdateDeps,
  _config: Config,
  _request: UpdateRequest,
): Promise<UpdateReport> {
  throw new Error("not yet written");
}

/**
 * Finishes or undoes an update a killed process left in the journal: after it, the bot
 * container exists and runs (old, or the verified new one), the other is removed, the status
 * file tells the truth and the journal is clear. Returns null when the journal was empty.
 * Takes the update lock; throws LockedError if another live update holds it.
 */
export function recoverFromJournal(_deps: UpdateDeps, _config: Config): Promise<UpdateReport | null> {
  throw new Error("not yet written");
}
