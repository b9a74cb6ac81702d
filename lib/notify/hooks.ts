/**
 * Where the update, the watch and health tell notify what happened. Each hook runs after the
 * outcome is settled (status file written, exit code known) and never throws into its caller.
 */

import type { HealthReport } from "../health.ts";
import type { JournalStore, StatusStore } from "../state.ts";
import type { UpdateReport } from "../update/report.ts";
import { CLI_DELIVERY_WAIT_MS, type Notifier } from "./notifier.ts";
import type { Notification } from "./events.ts";

/**
 * An update ended: its outcome is notified; when its rollback did not complete (the journal
 * still holds this update), that is notified too.
 */
export async function notifyUpdateEnded(
  notifier: Notifier,
  journal: JournalStore,
  report: UpdateReport,
): Promise<void> {
  if (!notifier.enabled) return;
  await notifier.updateFinished(report);
  const left = await journal.read().catch(() => null);
  if (left && left.id === report.id && !left.finished && report.outcome === "failed") {
    await notifier.rollbackUnfinished(report.id, unfinished(report, report.error));
  }
}

/** The fields of a rollback_unfinished message, from the update's report or its journal. */
function unfinished(
  update: Pick<Notification, "container" | "image" | "previousImage" | "previousImageId"> & {
    requestId?: string;
  },
  error: string | null,
): Partial<Notification> {
  return {
    container: update.container,
    image: update.image,
    previousImage: update.previousImage,
    previousImageId: update.previousImageId,
    requestId: update.requestId ?? null,
    error,
  };
}

/**
 * Journal recovery with notifications: a recovery that finishes an update is notified; one that
 * cannot (Docker away) is notified as an unfinished rollback, once per journal.
 */
export function notifyingRecover(
  notifier: Notifier,
  journal: JournalStore,
  recover: () => Promise<UpdateReport | null>,
): () => Promise<UpdateReport | null> {
  return async () => {
    try {
      const report = await recover();
      if (report) void notifier.rollbackFinished(report);
      return report;
    } catch (err) {
      const left = await journal.read().catch(() => null);
      if (left && !left.finished && left.steps.some((s) => s.name === "stop")) {
        const error = notifier.scrub(err instanceof Error ? err.message : String(err));
        void notifier.rollbackUnfinished(left.id, unfinished(left, error));
      }
      throw err;
    }
  };
}

/** The watcher's status store, telling notify of every trigger it refused. */
export function notifyingStatus(notifier: Notifier, status: StatusStore): StatusStore {
  return {
    read: () => status.read(),
    appendHistory: (s) => status.appendHistory(s),
    write: async (s) => {
      await status.write(s);
      if (s.state === "rejected") void notifier.triggerRejected(s);
    },
  };
}

/**
 * health's part: it restarted the watcher, or could not (said once until the watcher is well
 * again); the dead-man's switch ping (`<pingUrl>` all well, `<pingUrl>/fail` not); then what is
 * due in the outbox, within CLI_DELIVERY_WAIT_MS (the watcher may be the one that is down).
 */
export async function notifyHealth(notifier: Notifier, report: HealthReport): Promise<void> {
  if (report.repair.attempted) {
    await notifier.watcherRepair(report.repair.succeeded === true, report.repair.detail ?? "");
  } else if (report.verdict === "ok") {
    await notifier.watcherWell();
  }
  const started = Date.now();
  await notifier.ping(report.ok);
  if (notifier.enabled) {
    await notifier.deliverWithin(Math.max(0, CLI_DELIVERY_WAIT_MS - (Date.now() - started)));
  }
}
