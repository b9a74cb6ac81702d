/**
 * The update engine: one update of the bot container to a new image that never leaves the
 * bot down. Pull while the old container runs; create the new one under a temporary name;
 * stop the old (its own signal and timeout); swap names; start the new; verify; on failure
 * put the old one back. Every step is journaled before it runs, so a killed process can be
 * finished or undone by `recoverFromJournal`.
 */

import type { Config } from "../config.ts";
import type { ContainerInfo, CredentialStore, DockerEngine, PullProgress } from "../docker.ts";
import {
  describeError,
  DockerError,
  RejectedError,
  UpdateFailedError,
  UsageError,
} from "../errors.ts";
import { pruneImages } from "./images.ts";
import {
  checkImageRef,
  familiarRepository,
  formatImageRef,
  type ImageRef,
  parseImageRef,
  repositoryOf,
} from "../image_ref.ts";
import type { Logger } from "../log.ts";
import { buildCreateBody, recreateWarnings, unrecreatableReasons } from "./recreate.ts";
import {
  type JournalEntry,
  type LastUpdate,
  type Outcome,
  statusOfReport,
  type StepName,
  type StepRecord,
  type UpdateReport,
  type UpdateState,
} from "./report.ts";
import { finishForward, rollBackContainers } from "./rollback.ts";
import type { Clock, JournalStore, LastUpdateStore, StatusStore, UpdateLock } from "../state.ts";
import { verifyContainer, type VerifyOptions } from "./verify.ts";

export interface UpdateDeps {
  docker: DockerEngine;
  credentials: CredentialStore;
  clock: Clock;
  logger: Logger;
  lock: UpdateLock;
  journal: JournalStore;
  status: StatusStore;
  lastUpdate: LastUpdateStore;
  /** Our process id, recorded in the lock and the journal. */
  pid: number;
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
  /**
   * Deploy the image as it is on this host, without a pull (one built or `docker load`ed
   * here). Only for the command line: a trigger from the container cannot ask for it.
   */
  noPull?: boolean;
  /** The caller's request id, echoed into the status file. */
  requestId?: string;
  /** Who asked: shown in the lock holder and logs. */
  source: "cli" | "trigger";
}

/**
 * Runs one update. Throws RejectedError (bad reference, repository not allowed, a container
 * that cannot be recreated faithfully) and LockedError (another update runs) before anything
 * is touched, and DockerError when the daemon cannot be reached before anything was touched.
 * Every other failure is a report with outcome "failed" (the bot untouched) or "rolled_back"
 * (the old container back). Writes the status file and history as it goes.
 */
export async function runUpdate(
  deps: UpdateDeps,
  config: Config,
  request: UpdateRequest,
): Promise<UpdateReport> {
  if (request.rollback && request.image != null) {
    throw new UsageError("--rollback takes no image", {
      hint: "it goes back to the image that ran before",
    });
  }
  const ref = request.image == null ? null : parseImageRef(request.image);
  const lock = await deps.lock.acquire({
    pid: deps.pid,
    command: `update (${request.source})`,
    since: deps.clock.now().toISOString(),
  });
  try {
    // A journal left by a killed process is finished first: it may hold the bot's old container.
    if (await deps.journal.read()) await recoverLocked(deps, config);
    return await new UpdateRun(deps, config, request, ref).run();
  } finally {
    await lock.release();
  }
}

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

/** Names the update gives the containers while it swaps them. */
export function swapNames(container: string) {
  return { tempName: `${container}-updating`, previousName: `${container}-previous` };
}

/** The repositories that may be deployed: the configured list, or that of the running image. */
export function allowedRepositories(config: Config, runningImageRef: string): string[] {
  if (config.allowedImages.length) return config.allowedImages;
  try {
    return [repositoryOf(parseImageRef(runningImageRef))];
  } catch {
    return [];
  }
}

function verifyOptions(config: Config): VerifyOptions {
  return {
    healthTimeoutSeconds: config.healthTimeoutSeconds,
    stableSeconds: config.stableSeconds,
  };
}

class UpdateRun {
  private readonly report: UpdateReport;
  private readonly journal: JournalEntry;
  private readonly log: Logger;

  constructor(
    private readonly deps: UpdateDeps,
    private readonly config: Config,
    private readonly request: UpdateRequest,
    private readonly ref: ImageRef | null,
  ) {
    const now = deps.clock.now().toISOString();
    const id = `upd-${now.replace(/[-:.TZ]/g, "").slice(0, 14)}-${crypto.randomUUID().slice(0, 8)}`;
    this.report = {
      id,
      ...(request.requestId ? { requestId: request.requestId } : {}),
      outcome: "failed",
      container: config.container,
      image: ref ? formatImageRef(ref) : null,
      previousImage: null,
      imageId: null,
      previousImageId: null,
      startedAt: now,
      finishedAt: now,
      error: null,
      warnings: [],
      steps: [],
    };
    this.journal = {
      id,
      ...(request.requestId ? { requestId: request.requestId } : {}),
      pid: deps.pid,
      startedAt: now,
      container: config.container,
      step: "inspect",
      verified: false,
      image: this.report.image,
      previousImage: null,
      previousImageId: null,
      oldContainerId: null,
      oldWasRunning: false,
      oldRestartPolicy: null,
      newContainerId: null,
      ...swapNames(config.container),
      steps: this.report.steps,
    };
    const fields = () => ({
      update: this.report.id,
      container: this.config.container,
      image: this.report.image ?? undefined,
    });
    this.log = {
      debug: (m, f) => deps.logger.debug(m, { ...fields(), ...f }),
      info: (m, f) => deps.logger.info(m, { ...fields(), ...f }),
      warn: (m, f) => deps.logger.warn(m, { ...fields(), ...f }),
      error: (m, f) => deps.logger.error(m, { ...fields(), ...f }),
    };
  }

  async run(): Promise<UpdateReport> {
    let old: ContainerInfo;
    let target: string;
    try {
      old = await this.step("inspect", null, () => this.inspectOld());
      target = await this.chooseTarget(old);
      if (!this.request.rollback && !this.request.noPull) {
        await this.step("pull", "pulling", () => this.pull(target));
      }
      const newImageId = await this.step("compare", null, () => this.compare(old, target));
      if (newImageId === null) return await this.finish("unchanged", null);
      this.report.imageId = newImageId;
    } catch (err) {
      return await this.failBeforeTouching(err);
    }

    try {
      await this.step("create", "creating", () => this.createNew(old, target));
    } catch (err) {
      // The old container was never stopped: remove what was created, and the bot is untouched.
      await this.removeNew().catch((e) =>
        this.log.error("could not remove the new container", { error: msg(e) })
      );
      return await this.failBeforeTouching(err);
    }

    // From here the bot's container is touched; every failure ends in a rollback.
    const newId = this.journal.newContainerId!;
    const { docker } = this.deps;
    try {
      await this.step("stop", "stopping", async () => {
        // A stopped container with restart policy "always" would come back on a daemon
        // restart and trade beside the new one.
        if (this.journal.oldRestartPolicy?.Name !== "no") {
          await docker.setRestartPolicy(old.id, { Name: "no" });
        }
        await docker.stopContainer(old.id);
      });
      await this.step("rename", null, async () => {
        await docker.renameContainer(old.id, this.journal.previousName);
        await docker.renameContainer(newId, this.config.container);
      });
      await this.step("start", "starting", () => docker.startContainer(newId));
      const verdict = await this.step(
        "verify",
        "verifying",
        () => verifyContainer(docker, this.deps.clock, newId, verifyOptions(this.config)),
      );
      if (!verdict.ok) throw new UpdateFailedError(`the new container failed: ${verdict.reason}`);
      this.log.info("new container verified", { detail: verdict.detail });
    } catch (err) {
      return await this.rollBack(err);
    }

    this.journal.verified = true;
    try {
      await this.step("cleanup", null, () => this.cleanUp(old, target));
    } catch (err) {
      // The new container runs and was verified; what is left is tidying, which recovery
      // (the journal stays) or the next update finishes.
      return await this.finish("updated", null, {
        keepJournal: true,
        warning: `cleanup did not complete: ${msg(err)}`,
      });
    }
    return await this.finish("updated", null);
  }

  private async inspectOld(): Promise<ContainerInfo> {
    const { docker } = this.deps;
    const old = await docker.inspectContainer(this.config.container);
    if (!old) {
      // Refused like bad input: nothing is touched, and the bot's status file is not overwritten
      // because of a typo in --container.
      throw new RejectedError("container not found", {
        object: this.config.container,
        hint: "check the `container` setting; `docker ps -a` lists the containers",
      });
    }
    const reasons = unrecreatableReasons(old.inspect);
    if (reasons.length) {
      throw new RejectedError(`cannot recreate the container faithfully: ${reasons.join("; ")}`, {
        object: old.name,
      });
    }
    for (const name of [this.journal.tempName, this.journal.previousName]) {
      const other = await docker.inspectContainer(name);
      if (other && other.id !== old.id) {
        throw new UpdateFailedError(
          "a container already has the name an update needs",
          {
            object: name,
            hint: `look at it with 'docker inspect ${name}' and remove it if it is not needed`,
          },
        );
      }
    }
    this.journal.oldContainerId = old.id;
    this.journal.oldWasRunning = old.running || old.restarting;
    this.journal.oldRestartPolicy = old.inspect.HostConfig.RestartPolicy ?? null;
    this.journal.previousImage = this.report.previousImage = old.imageRef;
    this.journal.previousImageId = this.report.previousImageId = old.imageId;
    this.report.imageId = old.imageId;
    return old;
  }

  /** The reference to deploy, checked against allowedImages. */
  private async chooseTarget(old: ContainerInfo): Promise<string> {
    const target = this.request.rollback
      ? await this.rollbackTarget()
      : formatImageRef(this.ref ?? parseRunningImage(old.imageRef));
    if (!this.request.rollback) {
      checkImageRef(target, allowedRepositories(this.config, old.imageRef));
    }
    this.report.image = this.journal.image = target;
    return target;
  }

  /**
   * The image that ran before the last successful update, by its name. When that name now
   * means another image (a re-pull of the same tag), the name is moved back to the old image,
   * so the container never runs from a bare image ID.
   */
  private async rollbackTarget(): Promise<string> {
    const { docker } = this.deps;
    const last = await this.deps.lastUpdate.read();
    if (!last || last.container !== this.config.container) {
      throw new UpdateFailedError("no earlier update to roll back to", {
        object: this.config.container,
        hint: "--rollback goes back to the image that ran before the last successful update",
      });
    }
    if (!(await docker.inspectImage(last.previousImageId))) {
      throw new UpdateFailedError("the previous image is no longer present", {
        object: `${last.previousImage} (${last.previousImageId})`,
        hint: `pull it and run 'hyperbot-ops update ${last.previousImage}'`,
      });
    }
    const ref = parseRunningImage(last.previousImage);
    const byName = await docker.inspectImage(last.previousImage);
    if (byName?.id !== last.previousImageId) {
      if (!ref.tag || ref.digest) {
        throw new UpdateFailedError("the previous image's name now means another image", {
          object: last.previousImage,
          hint: `run 'hyperbot-ops update <image>' with the version to go back to`,
        });
      }
      await docker.tagImage(last.previousImageId, familiarRepository(ref), ref.tag);
      this.log.info("moved the tag back to the previous image", { imageId: last.previousImageId });
    }
    return formatImageRef(ref);
  }

  private async pull(target: string): Promise<void> {
    const ref = parseImageRef(target);
    const auth = await this.deps.credentials.lookup(ref.domain);
    this.log.info("pulling image", { registry: ref.domain, auth: auth ? "docker login" : "none" });
    await this.deps.docker.pullImage(target, { auth, onProgress: this.deps.onPullProgress });
  }

  /** The new image's ID, or null when nothing would change. */
  private async compare(old: ContainerInfo, target: string): Promise<string | null> {
    const image = await this.deps.docker.inspectImage(target);
    if (!image && this.request.noPull) {
      throw new RejectedError("the image is not on this host (--no-pull)", {
        object: target,
        hint: "load or build it first ('docker images' lists them), or update without --no-pull",
      });
    }
    if (!image) {
      throw new UpdateFailedError("the image is not present after the pull", { object: target });
    }
    if (image.id === old.imageId && !this.request.force) {
      this.log.info("the container already runs this image; nothing to do", { imageId: image.id });
      return null;
    }
    return image.id;
  }

  private async createNew(old: ContainerInfo, target: string): Promise<void> {
    const { docker } = this.deps;
    const oldImage = await docker.inspectImage(old.imageId);
    for (const w of recreateWarnings(old.inspect, oldImage?.config ?? null)) this.warn(w);
    const body = buildCreateBody(old.inspect, oldImage?.config ?? null, target);
    this.journal.newContainerId = await docker.createContainer(this.journal.tempName, body);
    await this.deps.journal.write(this.journal);
    // The tag could have moved between compare and create (another pull): run only what was compared.
    const created = await docker.inspectContainer(this.journal.newContainerId);
    if (created?.imageId !== this.report.imageId) {
      throw new UpdateFailedError("the image changed during the update; run it again", {
        object: target,
      });
    }
  }

  private async cleanUp(old: ContainerInfo, target: string): Promise<void> {
    const { docker } = this.deps;
    await docker.removeContainer(old.id, { force: true });
    const last = await this.recordLastUpdate(target, old);
    try {
      const deployedIds = last.recentImageIds ?? [];
      const removed = await pruneImages(docker, this.log, {
        deployedIds,
        keepImages: this.config.keepImages,
      });
      if (removed.length) await this.recordRemovedImages(last, removed);
    } catch (err) {
      this.warn(`could not remove old images: ${msg(err)}`);
    }
  }

  private recordLastUpdate(target: string, old: ContainerInfo): Promise<LastUpdate> {
    return recordLastUpdate(this.deps, {
      id: this.report.id,
      container: this.config.container,
      image: target,
      imageId: this.report.imageId!,
      previousImage: old.imageRef,
      previousImageId: old.imageId,
    });
  }

  /** Removed images are no longer candidates, so the deployed history stays short. */
  private async recordRemovedImages(last: LastUpdate, removed: string[]) {
    const gone = new Set(removed);
    await this.deps.lastUpdate.write({
      ...last,
      recentImageIds: (last.recentImageIds ?? []).filter((id) => !gone.has(id)),
    });
  }

  /** A failure before the old container was stopped: nothing to undo. */
  private async failBeforeTouching(err: unknown): Promise<UpdateReport> {
    if (err instanceof RejectedError) {
      await this.deps.journal.clear();
      throw err;
    }
    const report = await this.finish("failed", err);
    // The watcher keeps the trigger and retries when the daemon itself is away.
    if (isUnreachable(err) && this.report.steps.length <= 1) throw err;
    return report;
  }

  private async rollBack(cause: unknown): Promise<UpdateReport> {
    this.log.error("update failed; rolling back", { error: msg(cause) });
    let verdict;
    try {
      verdict = await this.step(
        "rollback",
        null,
        () =>
          rollBackContainers(
            { docker: this.deps.docker, clock: this.deps.clock, logger: this.log },
            this.journal,
            verifyOptions(this.config),
          ),
        { journalBestEffort: true },
      );
    } catch (err) {
      // The journal stays: the watcher (or the next update) finishes the rollback.
      this.log.error("rollback did not complete; the journal keeps what is left to do", {
        error: msg(err),
      });
      return await this.finish(
        "failed",
        new UpdateFailedError(`${msg(cause)}; rollback failed: ${msg(err)}`),
        { keepJournal: true },
      );
    }
    this.report.imageId = this.journal.previousImageId;
    if (!verdict.ok) {
      // The old container is back under its name; that it does not run is the bot's own state.
      return await this.finish(
        "failed",
        new UpdateFailedError(
          `${msg(cause)}; rolled back, but the old container failed too: ${verdict.reason}`,
        ),
      );
    }
    return await this.finish("rolled_back", cause);
  }

  private async finish(
    outcome: Outcome,
    err: unknown,
    options: { keepJournal?: boolean; warning?: string } = {},
  ) {
    if (options.warning) this.warn(options.warning);
    this.report.outcome = outcome;
    this.report.error = err === null ? null : msg(err);
    this.report.finishedAt = this.deps.clock.now().toISOString();
    if (!options.keepJournal && this.journal.oldContainerId) {
      this.journal.finished = true;
      await this.deps.journal.write(this.journal).catch((e) =>
        this.log.warn("cannot mark the journal finished", { error: msg(e) })
      );
    }
    await publishResult(this.deps, this.report, this.log);
    if (!options.keepJournal) await this.deps.journal.clear();
    const level = outcome === "updated" || outcome === "unchanged" ? "info" : "error";
    this.log[level](`update finished: ${outcome}`, {
      outcome,
      error: this.report.error ?? undefined,
      imageId: this.report.imageId ?? undefined,
    });
    return this.report;
  }

  private async step<T>(
    name: StepName,
    state: UpdateState | null,
    fn: () => Promise<T>,
    options: { journalBestEffort?: boolean } = {},
  ): Promise<T> {
    const record: StepRecord = { name, startedAt: this.deps.clock.now().toISOString() };
    this.report.steps.push(record);
    this.journal.step = name;
    try {
      await this.deps.journal.write(this.journal);
    } catch (err) {
      // Undoing must not wait for a disk with room for the journal.
      if (!options.journalBestEffort) throw err;
      this.log.error("cannot write the journal; going on with the rollback", { error: msg(err) });
    }
    if (state) await this.writeProgress(state);
    await this.deps.beforeStep?.(name);
    this.log.info(`step ${name}`, { step: name });
    try {
      const result = await fn();
      record.ok = true;
      return result;
    } catch (err) {
      record.ok = false;
      record.detail = msg(err);
      throw err;
    } finally {
      record.finishedAt = this.deps.clock.now().toISOString();
    }
  }

  private async writeProgress(state: UpdateState) {
    const status = { ...statusOfReport(this.report), state, finishedAt: null, error: null };
    await this.deps.status.write(status).catch((e) =>
      this.log.warn("cannot write the status file", { error: msg(e) })
    );
  }

  private warn(text: string) {
    this.report.warnings.push(text);
    this.log.warn(text);
  }

  private async removeNew() {
    if (this.journal.newContainerId) {
      await this.deps.docker.removeContainer(this.journal.newContainerId, { force: true });
    }
  }
}

const UNTOUCHED_STEPS: StepName[] = ["inspect", "pull", "compare"];

async function recoverLocked(deps: UpdateDeps, config: Config): Promise<UpdateReport | null> {
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
  const report: UpdateReport = {
    id: j.id,
    ...(j.requestId ? { requestId: j.requestId } : {}),
    outcome: "failed",
    container: j.container,
    image: j.image,
    previousImage: j.previousImage,
    imageId: j.previousImageId,
    previousImageId: j.previousImageId,
    startedAt: j.startedAt,
    finishedAt: now(),
    error: null,
    warnings: [],
    steps: j.steps,
  };
  const record: StepRecord = { name: "rollback", startedAt: now() };
  const forwardImageId = j.verified ? await finishForward(deps, j) : null;
  if (forwardImageId) {
    record.name = "cleanup";
    report.steps.push(record);
    report.imageId = forwardImageId;
    report.outcome = "updated";
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
    report.outcome = "failed";
    report.error = `interrupted during step '${j.step}'; nothing was changed`;
  } else {
    report.steps.push(record);
    const verdict = await rollBackContainers(deps, j, verifyOptions(config));
    report.outcome = verdict.ok ? "rolled_back" : "failed";
    report.error = `interrupted during step '${j.step}'; rolled back to ${j.previousImage}` +
      (verdict.ok ? "" : `, but the old container failed: ${verdict.reason}`);
  }
  record.finishedAt = report.finishedAt = now();
  record.ok = true;
  if (config.container !== j.container) {
    report.warnings.push(
      `the journal was for container '${j.container}', the config names '${config.container}'`,
    );
  }
  await publishResult(deps, report, log);
  await deps.journal.clear();
  log.warn(`recovered interrupted update: ${report.outcome}`, {
    ...fields,
    outcome: report.outcome,
  });
  return report;
}

/**
 * Records a successful update for `--rollback` and keepImages: the images deployed to this
 * container, newest first (the one it runs now, then the one before, …).
 */
async function recordLastUpdate(
  deps: Pick<UpdateDeps, "lastUpdate" | "clock">,
  update: Omit<LastUpdate, "finishedAt" | "recentImageIds">,
): Promise<LastUpdate> {
  const earlier = await deps.lastUpdate.read();
  const history = earlier?.container === update.container
    ? earlier.recentImageIds ?? [earlier.imageId, earlier.previousImageId]
    : [];
  const last: LastUpdate = {
    ...update,
    finishedAt: deps.clock.now().toISOString(),
    recentImageIds: unique([update.imageId, update.previousImageId, ...history]).slice(0, 20),
  };
  await deps.lastUpdate.write(last);
  return last;
}

/** The result for the bot: the status file and a line of history. Never throws. */
async function publishResult(
  deps: Pick<UpdateDeps, "status">,
  report: UpdateReport,
  log: Logger,
): Promise<void> {
  const status = statusOfReport(report);
  await deps.status.write(status).catch((e) =>
    log.error("cannot write the status file", { error: msg(e) })
  );
  await deps.status.appendHistory(status).catch((e) =>
    log.warn("cannot append to history", { error: msg(e) })
  );
}

function parseRunningImage(imageRef: string): ImageRef {
  try {
    return parseImageRef(imageRef);
  } catch (err) {
    throw new UpdateFailedError("the container's image reference cannot be parsed; name an image", {
      object: imageRef,
      cause: err,
    });
  }
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values.filter((v) => v !== null && v !== undefined && v !== ""))];
}

/** A connection-level Docker failure (no HTTP answer at all). */
export function isUnreachable(err: unknown): boolean {
  return err instanceof DockerError && err.status === undefined &&
    /reach|connect|socket/i.test(err.message);
}

/** One line for a report or log: the same form main.ts prints. */
function msg(err: unknown): string {
  return describeError(err).message;
}
