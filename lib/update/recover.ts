/**
 * Recovery: finishing or undoing an update a killed process left in the journal. The journal
 * says which step was running and whether the new container was verified; from that the
 * containers go forward (verified: keep the new one) or back (the old one is put back), or are
 * left alone (killed before anything was touched). The report is derived from the journal.
 */

import { pinAfterUpdate } from "../compose/pin.ts";
import type { Config } from "../config.ts";
import { errorWithHint } from "../errors.ts";
import { reportOfJournal, type StepName, type StepRecord, type UpdateReport } from "./report.ts";
import { publishResult, recordLastUpdate } from "./result.ts";
import { DowntimeMeter, meteredContainers } from "./downtime.ts";
import { finishForward, OldContainerGoneError, rollBackContainers } from "./rollback.ts";
import type { UpdateDeps } from "./run.ts";
import { verifyOptions } from "./verify.ts";

/**
 * Finishes or undoes an update a killed process left in the journal: after it, the bot
 * container exists and runs (old, or the verified new one), the other is removed, the status
 * file tells the truth and the journal is clear. Returns null when the journal was empty.
 * Takes the update lock; throws LockedError if another live update holds it, DockerError
 * (journal kept) when the daemon cannot be reached.
 */
export async function recoverFromJournal(
  deps: UpdateDeps,
  config: Config,
): Promise<UpdateReport | null> {
  if (!(await deps.journal.read())) return null;
  const lock = await deps.lock.acquire({
    pid: deps.pid,
    command: "recover",
    since: deps.clock.now().toISOString(),
  });
  try {
    return await recoverLocked(deps, config);
  } finally {
    await lock.release();
  }
}

const UNTOUCHED_STEPS: StepName[] = ["inspect", "pull", "compare"];

/** recoverFromJournal for a caller that holds the update lock already. */
export async function recoverLocked(
  deps: UpdateDeps,
  config: Config,
): Promise<UpdateReport | null> {
  const j = await deps.journal.read();
  if (!j) return null;
  const log = deps.logger;
  const fields = { update: j.id, container: j.container, step: j.step };

  // Killed after the containers reached their final state, while the result was being
  // written: nothing is left to do with them. (The journal's flag decides, never the status
  // file, which the bot's container can write.)
  if (j.finished) {
    await deps.journal.clear();
    log.info("the interrupted update had already ended; cleared its journal", fields);
    return null;
  }

  log.warn("found an interrupted update in the journal; recovering", fields);
  const now = () => deps.clock.now().toISOString();
  let outcome: UpdateReport["outcome"];
  let imageId = j.previousImageId;
  let error: string | null = null;
  // The bot went down when the dead process stopped it (or began to) and is up again when a
  // bot container started: the new one before the kill, or whichever recovery starts.
  const meter = new DowntimeMeter(deps.clock);
  const stop = j.oldWasRunning ? j.steps.find((s) => s.name === "stop") : undefined;
  if (stop) meter.down(new Date(stop.finishedAt ?? stop.startedAt));
  const started = j.steps.find((s) => s.name === "start" && s.ok && s.finishedAt);
  if (started) meter.up(new Date(started.finishedAt!));
  const ops = { ...deps, docker: meteredContainers(deps.docker, meter, () => false) };
  const record: StepRecord = { name: "rollback", startedAt: now() };
  const forwardImageId = j.verified ? await finishForward(ops, j) : null;
  if (forwardImageId) {
    record.name = "cleanup";
    j.steps.push(record);
    imageId = forwardImageId;
    outcome = "updated";
    if (j.image && j.previousImage && j.previousImageId) {
      await recordLastUpdate(deps, {
        id: j.id,
        container: j.container,
        image: j.image,
        imageId: forwardImageId,
        previousImage: j.previousImage,
        previousImageId: j.previousImageId,
      });
    }
  } else if (UNTOUCHED_STEPS.includes(j.step)) {
    outcome = "failed";
    error = `interrupted during step '${j.step}'; nothing was changed`;
  } else {
    j.steps.push(record);
    try {
      const verdict = await rollBackContainers(ops, j, verifyOptions(config));
      outcome = verdict.ok ? "rolled_back" : "failed";
      error = `interrupted during step '${j.step}'; rolled back to ${j.previousImage}` +
        (verdict.ok ? "" : `, but the old container failed: ${verdict.reason}`);
    } catch (err) {
      // Nothing to roll back to, now or ever: end the update rather than retry it for ever.
      if (!(err instanceof OldContainerGoneError)) throw err;
      outcome = "failed";
      error = `interrupted during step '${j.step}'; ${errorWithHint(err)}`;
      log.error("cannot roll back: the old container is gone", { ...fields, error });
    }
  }
  const finishedAt = now();
  record.finishedAt = finishedAt;
  record.ok = true;
  const warnings: string[] = [];
  if (config.container !== j.container) {
    warnings.push(
      `the journal was for container '${j.container}', the config names '${config.container}'`,
    );
  }
  if (outcome === "updated") {
    for (const w of await pinAfterUpdate(deps, config.compose, j.container, j.image, log)) {
      warnings.push(w);
      log.warn(w, fields);
    }
  }
  const report = reportOfJournal(j, {
    outcome,
    imageId,
    finishedAt,
    downtimeMs: meter.ms(),
    error,
    warnings,
  });
  await publishResult(deps, report, log);
  await deps.journal.clear();
  log.warn(`recovered interrupted update: ${report.outcome}`, {
    ...fields,
    outcome: report.outcome,
  });
  return report;
}
