/**
 * What an ended update leaves behind, whether it ran to its end or was finished by recovery:
 * the status file and the history line the bot reads, and the last-update record that
 * `--rollback` and keepImages go by.
 */

import { errorText } from "../errors.ts";
import type { MetricsSink } from "../metrics/recorder.ts";
import type { Logger } from "../log.ts";
import { type LastUpdate, statusOfReport, type UpdateReport } from "./report.ts";
import type { Clock, LastUpdateStore, StatusStore } from "../state.ts";

/** The result for the bot: the status file and a line of history. Never throws. */
export async function publishResult(
  deps: { status: StatusStore; metrics?: MetricsSink },
  report: UpdateReport,
  log: Logger,
): Promise<void> {
  deps.metrics?.record({
    kind: "update",
    outcome: report.outcome,
    finishedAt: report.finishedAt,
    durationMs: report.durationMs,
    downtimeMs: report.downtimeMs,
  });
  const status = statusOfReport(report);
  await deps.status.write(status).catch((e) =>
    log.error("cannot write the status file", { error: errorText(e) })
  );
  await deps.status.appendHistory(status).catch((e) =>
    log.warn("cannot append to history", { error: errorText(e) })
  );
}

/**
 * Records a successful update for `--rollback` and keepImages: the images deployed to this
 * container, newest first (the one it runs now, then the one before, …).
 */
export async function recordLastUpdate(
  deps: { lastUpdate: LastUpdateStore; clock: Clock },
  update: Omit<LastUpdate, "finishedAt" | "recentImageIds">,
): Promise<LastUpdate> {
  const earlier = await deps.lastUpdate.read();
  const history = earlier?.container === update.container
    ? earlier.recentImageIds ?? [earlier.imageId, earlier.previousImageId]
    : [];
  // A recreate on the same image (--force) keeps the image that ran before it as the rollback
  // target: the earlier record's, the newest of its images that differs from this one.
  let previous = { image: update.previousImage, id: update.previousImageId };
  if (previous.id === update.imageId && earlier?.container === update.container) {
    const candidates = [
      { image: earlier.image, id: earlier.imageId },
      { image: earlier.previousImage, id: earlier.previousImageId },
    ];
    previous = candidates.find((c) => c.id !== update.imageId) ?? previous;
  }
  const last: LastUpdate = {
    ...update,
    previousImage: previous.image,
    previousImageId: previous.id,
    finishedAt: deps.clock.now().toISOString(),
    recentImageIds: unique([update.imageId, update.previousImageId, ...history]).slice(0, 20),
  };
  await deps.lastUpdate.write(last);
  return last;
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values.filter((v) => v !== null && v !== undefined && v !== ""))];
}
