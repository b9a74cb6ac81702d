/**
 * Putting the bot's containers in order from what the journal says, used both by a failing
 * update and by recovery after a kill. Each function is idempotent: run twice, it ends in the
 * same place. Containers are only ever removed by the ID the journal recorded (or the
 * temporary name, when the new container was made after the update began), never by the
 * bot's own name, and never before the container that stays is known to exist.
 */

import type { ContainerInfo, Containers } from "../docker.ts";
import { UpdateFailedError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { JournalEntry } from "./report.ts";
import type { Clock } from "../state.ts";
import { type Verdict, verifyContainer, type VerifyOptions } from "./verify.ts";

/** How many lines of a failed container's output go to update.log. */
export const FAILED_LOG_LINES = 50;

/**
 * The old container is gone (someone removed it during the update): there is nothing to roll
 * back to, and no later try can change that. The update ends as failed and its journal is
 * cleared, rather than kept for a retry that would fail the same way for ever (and keep the
 * watcher from ever getting past its start).
 */
export class OldContainerGoneError extends UpdateFailedError {}

export interface ContainerOps {
  docker: Containers;
  clock: Clock;
  logger: Logger;
  /** Told the failed new container's last output before it is removed (for notifications). */
  onFailedOutput?: (output: string) => void;
  /**
   * The exit code the new container died with, as verification saw it. A container under a
   * restart policy may run again by the time it is removed, and a stop sets its own code: the
   * code on removal is not the one it died with.
   */
  failedExitCode?: number;
}

/**
 * Puts the old container back: removes the new one (its last output goes to the log), gives
 * the old one its name and restart policy back, and, if it was running before the update,
 * waits out a stop still in progress, starts it and verifies it like a new one.
 * Returns the verdict on the old container (ok when it was not running before).
 * Throws OldContainerGoneError when the old container is gone (after keeping the new one
 * running under the bot's name, so something runs), and on Docker errors (the journal then
 * stays for another try).
 */
export async function rollBackContainers(
  ops: ContainerOps,
  j: JournalEntry,
  verify: VerifyOptions,
): Promise<Verdict> {
  const { docker, logger } = ops;
  if (!j.oldContainerId) return { ok: true, detail: "nothing was changed" };
  const old = await docker.inspectContainer(j.oldContainerId);
  const fresh = await findNewContainer(docker, j);
  if (!old) {
    if (fresh) {
      if (fresh.name !== j.container) await docker.renameContainer(fresh.id, j.container);
      if (!fresh.running) await docker.startContainer(fresh.id);
    }
    throw new OldContainerGoneError(
      fresh
        ? "the old container was removed by someone else during the update; the new one was kept running"
        : "the old container was removed by someone else during the update, and there is no new one",
      {
        object: j.container,
        hint: "check the bot with 'docker ps -a' and start it by hand if needed",
      },
    );
  }
  if (fresh && fresh.id !== old.id) {
    const output = await docker.containerLogs(fresh.id, FAILED_LOG_LINES).catch(() => "");
    ops.onFailedOutput?.(output);
    const diedWith = ops.failedExitCode ??
      (fresh.running || fresh.restarting ? undefined : fresh.exitCode);
    logger.error("output of the new container before removal", {
      containerId: fresh.id.slice(0, 12),
      exitCode: diedWith,
      logs: output.trimEnd() || "(no output)",
    });
    await docker.removeContainer(fresh.id, { force: true });
  }
  if (old.name !== j.container) await docker.renameContainer(old.id, j.container);
  const policy = j.oldRestartPolicy;
  if (policy && old.inspect.HostConfig.RestartPolicy?.Name !== policy.Name) {
    await docker.setRestartPolicy(old.id, policy);
  }
  if (!j.oldWasRunning) return { ok: true, detail: "the old container was not running before" };

  // A killed update may have left the daemon stopping it: let that stop end before starting.
  const stopAsked = j.steps.some((s) => s.name === "stop");
  if (old.running && stopAsked) await docker.stopContainer(old.id);
  const now = old.running && !stopAsked ? old : await docker.inspectContainer(old.id);
  if (!now?.running) await docker.startContainer(old.id);
  const verdict = await verifyContainer(docker, ops.clock, old.id, verify);
  if (verdict.ok) {
    logger.info("old container is back and running", { containerId: old.id.slice(0, 12) });
  }
  return verdict;
}

/**
 * Completes an update whose new container was verified: gives it the bot's name, runs it,
 * removes the old one. Returns the image ID it runs, or null when the new container is gone
 * (the caller then rolls back).
 */
export async function finishForward(ops: ContainerOps, j: JournalEntry): Promise<string | null> {
  const { docker } = ops;
  const fresh = await findNewContainer(docker, j);
  if (!fresh) return null;
  if (fresh.name !== j.container) await docker.renameContainer(fresh.id, j.container);
  if (!fresh.running) await docker.startContainer(fresh.id);
  if (j.oldContainerId && j.oldContainerId !== fresh.id) {
    await docker.removeContainer(j.oldContainerId, { force: true });
  }
  return fresh.imageId;
}

/**
 * The update's new container: by the recorded ID, or, when a kill came between the create
 * and the journal write, by the temporary name if it was created after the update began.
 */
async function findNewContainer(
  docker: Containers,
  j: JournalEntry,
): Promise<ContainerInfo | null> {
  if (j.newContainerId) return await docker.inspectContainer(j.newContainerId);
  const byName = await docker.inspectContainer(j.tempName);
  if (!byName || byName.id === j.oldContainerId) return null;
  const created = Date.parse(byName.inspect.Created ?? "");
  return Number.isFinite(created) && created >= Date.parse(j.startedAt) - 1000 ? byName : null;
}
