/**
 * The update engine: one update of the bot container to a new image that never leaves the
 * bot down. Pull while the old container runs; create the new one under a temporary name;
 * stop the old (its own signal and timeout); swap names; start the new; verify; on failure
 * put the old one back. Every step is journaled before it runs, so a killed process can be
 * finished or undone by `recoverFromJournal` (recover.ts). The journal is the one record of
 * the update's progress; the report is derived from it (reportOfJournal).
 */

import type { Config } from "../config.ts";
import type { ContainerInfo, CredentialStore, DockerEngine, PullProgress } from "../docker.ts";
import {
  DockerError,
  errorText,
  errorWithHint,
  NothingToDoError,
  RejectedError,
  UpdateFailedError,
  UsageError,
} from "../errors.ts";
import { type ComposeFiles, pinAfterUpdate } from "../compose/pin.ts";
import { pruneFailedImages, pruneImages } from "./images.ts";
import {
  checkImageRef,
  familiarRepository,
  formatImageRef,
  type ImageRef,
  parseImageRef,
  repositoryOf,
} from "../image_ref.ts";
import type { Logger } from "../log.ts";
import type { MetricsSink } from "../metrics/recorder.ts";
import { buildCreateBody, recreateWarnings, unrecreatableReasons } from "./recreate.ts";
import {
  type JournalEntry,
  type LastUpdate,
  type Outcome,
  reportOfJournal,
  statusOfReport,
  type StepName,
  type StepRecord,
  type UpdateReport,
  type UpdateState,
} from "./report.ts";
import { recoverLocked } from "./recover.ts";
import { publishResult, recordLastUpdate } from "./result.ts";
import { OldContainerGoneError, rollBackContainers } from "./rollback.ts";
import { DowntimeMeter, meteredContainers } from "./downtime.ts";
import type {
  Clock,
  FailedImagesStore,
  JournalStore,
  LastUpdateStore,
  StatusStore,
  UpdateLock,
} from "../state.ts";
import { verifyContainer, verifyOptions } from "./verify.ts";

export interface UpdateDeps {
  docker: DockerEngine;
  credentials: CredentialStore;
  clock: Clock;
  logger: Logger;
  lock: UpdateLock;
  journal: JournalStore;
  status: StatusStore;
  lastUpdate: LastUpdateStore;
  /** The images of failed and rolled-back updates, bounded by keepImages (absent: kept). */
  failedImages?: FailedImagesStore;
  /** Our process id, recorded in the lock and the journal. */
  pid: number;
  /** The operator's compose files, for pinning a compose project's image (absent: no pinning). */
  composeFiles?: ComposeFiles;
  /** Told every ended update (absent: no metrics). */
  metrics?: MetricsSink;
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
  if (request.rollback && request.force) {
    throw new UsageError("--rollback and --force exclude each other", {
      hint: "--rollback always recreates the container on the image that ran before",
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

class UpdateRun {
  /** The one record of what the update did; the report is derived from it. */
  private readonly journal: JournalEntry;
  /** The image ID compared as the new one; null before the compare and after a rollback. */
  private newImageId: string | null = null;
  /** The image this update pulled and compared as the new one; kept after a rollback. */
  private pulledImageId: string | null = null;
  private readonly warnings: string[] = [];
  /** The exit code the new container died with, when verification saw it die. */
  private failedExitCode: number | undefined;
  /** The failed new container's last output lines (raw: notify makes them printable). */
  private logTail: string[] = [];
  private readonly log: Logger;
  private readonly downtime: DowntimeMeter;
  /** The engine, with the downtime meter watching stops and starts. */
  private readonly docker: DockerEngine;

  constructor(
    private readonly deps: UpdateDeps,
    private readonly config: Config,
    private readonly request: UpdateRequest,
    private readonly ref: ImageRef | null,
  ) {
    const now = deps.clock.now().toISOString();
    const id = `upd-${now.replace(/[-:.TZ]/g, "").slice(0, 14)}-${crypto.randomUUID().slice(0, 8)}`;
    this.journal = {
      id,
      ...(request.requestId ? { requestId: request.requestId } : {}),
      pid: deps.pid,
      startedAt: now,
      container: config.container,
      step: "inspect",
      verified: false,
      image: ref ? formatImageRef(ref) : null,
      previousImage: null,
      previousImageId: null,
      oldContainerId: null,
      oldWasRunning: false,
      oldRestartPolicy: null,
      newContainerId: null,
      ...swapNames(config.container),
      steps: [],
    };
    this.downtime = new DowntimeMeter(deps.clock);
    this.docker = meteredContainers(
      deps.docker,
      this.downtime,
      (id) => id === this.journal.oldContainerId && this.journal.oldWasRunning,
    );
    const fields = () => ({
      update: this.journal.id,
      container: this.config.container,
      image: this.journal.image ?? undefined,
    });
    this.log = {
      debug: (m, f) => deps.logger.debug(m, { ...fields(), ...f }),
      info: (m, f) => deps.logger.info(m, { ...fields(), ...f }),
      warn: (m, f) => deps.logger.warn(m, { ...fields(), ...f }),
      error: (m, f) => deps.logger.error(m, { ...fields(), ...f }),
    };
  }

  /**
   * The report as the update stands: derived from the journal, with the image ID the container
   * runs (the new one once compared, the old one before that and after a rollback).
   */
  private report(
    outcome: Outcome,
    finishedAt: string,
    error: string | null,
  ): UpdateReport {
    const report = reportOfJournal(this.journal, {
      outcome,
      imageId: this.newImageId ?? this.journal.previousImageId,
      finishedAt,
      downtimeMs: this.downtime.ms(),
      error,
      warnings: this.warnings,
    });
    return this.logTail.length ? { ...report, logTail: this.logTail } : report;
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
      this.newImageId = newImageId;
      this.pulledImageId = newImageId;
    } catch (err) {
      return await this.failBeforeTouching(err);
    }

    try {
      await this.step("create", "creating", () => this.createNew(old, target));
    } catch (err) {
      // The old container was never stopped: remove what was created, and the bot is untouched.
      await this.removeNew().catch((e) =>
        this.log.error("could not remove the new container", { error: errorText(e) })
      );
      return await this.failBeforeTouching(err);
    }

    // From here the bot's container is touched; every failure ends in a rollback.
    const newId = this.journal.newContainerId!;
    const { docker } = this;
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
      // A failed verdict fails the step itself: the report, status file and history record
      // verify as ok:false with the reason, then the rollback.
      const verdict = await this.step("verify", "verifying", async () => {
        const v = await verifyContainer(docker, this.deps.clock, newId, verifyOptions(this.config));
        if (!v.ok) {
          this.failedExitCode = v.exitCode;
          throw new UpdateFailedError(`the new container failed: ${v.reason}`);
        }
        return v;
      });
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
        warning: `cleanup did not complete: ${errorText(err)}`,
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
    this.journal.previousImage = old.imageRef;
    this.journal.previousImageId = old.imageId;
    return old;
  }

  /** The reference to deploy, checked against allowedImages. */
  private async chooseTarget(old: ContainerInfo): Promise<string> {
    const target = this.request.rollback
      ? await this.rollbackTarget(old)
      : formatImageRef(this.ref ?? parseRunningImage(old.imageRef));
    if (!this.request.rollback) {
      checkImageRef(target, allowedRepositories(this.config, old.imageRef));
    }
    this.journal.image = target;
    return target;
  }

  /**
   * The image that ran before the last successful update, by its name. When that name now
   * means another image (a re-pull of the same tag), the name is moved back to the old image,
   * so the container never runs from a bare image ID.
   */
  private async rollbackTarget(old: ContainerInfo): Promise<string> {
    const { docker } = this.deps;
    const last = await this.deps.lastUpdate.read();
    if (!last || last.container !== this.config.container) {
      throw new NothingToDoError(
        `nothing to roll back to: no successful update of '${this.config.container}' is recorded`,
        {
          hint: "--rollback goes back to the image that ran before the last successful update; " +
            "to run another version: 'hyperbot-ops update <image>'",
        },
      );
    }
    if (last.previousImageId === old.imageId) {
      throw new NothingToDoError(
        `nothing to roll back to: '${this.config.container}' already runs ${last.previousImage} ` +
          `(${last.previousImageId.slice(0, 19)}), the image from before the last update`,
        { hint: "to run another version: 'hyperbot-ops update <image>'" },
      );
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
    try {
      await this.deps.docker.pullImage(target, { auth, onProgress: this.deps.onPullProgress });
    } catch (err) {
      if (!(err instanceof DockerError) || !AUTH_REFUSED.test(err.message)) throw err;
      // The report's error is all the operator sees of it: say which file was read and what to do.
      const file = this.deps.credentials.configFile ?? "the Docker config file";
      throw new UpdateFailedError(
        `${err.message} (credentials for ${ref.domain}: ${auth ? "found" : "none"} in ${file}; ` +
          `log in as root with 'docker login ${ref.domain}', or set DOCKER_CONFIG to the folder ` +
          `whose config.json holds them)`,
        { cause: err },
      );
    }
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
    if (created?.imageId !== this.newImageId) {
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
      this.warn(`could not remove old images: ${errorText(err)}`);
    }
  }

  private recordLastUpdate(target: string, old: ContainerInfo): Promise<LastUpdate> {
    return recordLastUpdate(this.deps, {
      id: this.journal.id,
      container: this.config.container,
      image: target,
      imageId: this.newImageId!,
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

  /**
   * A failure before the old container was stopped: nothing to undo. Refused input, a request
   * with nothing to do, and a daemon that cannot be reached at all before the first look are no
   * update: thrown, with nothing written (no status file, history, record or metrics), so a
   * mistyped command line never reads as a failed update. (The watcher keeps the trigger and
   * retries when the daemon is away.)
   */
  private async failBeforeTouching(err: unknown): Promise<UpdateReport> {
    const notAnUpdate = err instanceof RejectedError || err instanceof NothingToDoError ||
      (isUnreachable(err) && this.journal.steps.length <= 1);
    if (notAnUpdate) {
      await this.deps.journal.clear();
      throw err;
    }
    return await this.finish("failed", err);
  }

  private async rollBack(cause: unknown): Promise<UpdateReport> {
    this.log.error("update failed; rolling back", { error: errorText(cause) });
    let verdict;
    try {
      verdict = await this.step(
        "rollback",
        null,
        () =>
          rollBackContainers(
            {
              docker: this.docker,
              clock: this.deps.clock,
              logger: this.log,
              failedExitCode: this.failedExitCode,
              onFailedOutput: (output) => {
                this.logTail = output.split("\n").filter((l) => l.trim() !== "").slice(-10);
              },
            },
            this.journal,
            verifyOptions(this.config),
          ),
        { journalBestEffort: true },
      );
    } catch (err) {
      if (err instanceof OldContainerGoneError) {
        // Nothing to roll back to, now or ever: the update ends here and its journal goes.
        return await this.finish(
          "failed",
          new UpdateFailedError(`${errorText(cause)}; rollback failed: ${errorWithHint(err)}`),
        );
      }
      // The journal stays: the watcher (or the next update) finishes the rollback.
      this.log.error("rollback did not complete; the journal keeps what is left to do", {
        error: errorText(err),
      });
      return await this.finish(
        "failed",
        new UpdateFailedError(`${errorText(cause)}; rollback failed: ${errorText(err)}`),
        { keepJournal: true },
      );
    }
    // The old container is back: it runs the old image.
    this.newImageId = null;
    if (!verdict.ok) {
      // The old container is back under its name; that it does not run is the bot's own state.
      return await this.finish(
        "failed",
        new UpdateFailedError(
          `${errorText(cause)}; rolled back, but the old container failed too: ${verdict.reason}`,
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
    // Only a verified new image is pinned (also after --rollback); never on any other outcome.
    if (outcome === "updated") {
      const { compose } = this.config;
      const image = this.journal.image;
      for (
        const w of await pinAfterUpdate(this.deps, compose, this.config.container, image, this.log)
      ) {
        this.warn(w);
      }
    }
    const report = this.report(
      outcome,
      this.deps.clock.now().toISOString(),
      err === null ? null : errorWithHint(err),
    );
    if (!options.keepJournal && this.journal.oldContainerId) {
      this.journal.finished = true;
      await this.deps.journal.write(this.journal).catch((e) =>
        this.log.warn("cannot mark the journal finished", { error: errorText(e) })
      );
    }
    await publishResult(this.deps, report, this.log);
    if (!options.keepJournal) await this.deps.journal.clear();
    if ((outcome === "failed" || outcome === "rolled_back") && !options.keepJournal) {
      await this.pruneFailedImage();
    }
    const level = outcome === "updated" || outcome === "unchanged" ? "info" : "error";
    this.log[level](`update finished: ${outcome}`, {
      outcome,
      error: report.error ?? undefined,
      imageId: report.imageId ?? undefined,
      durationMs: report.durationMs,
      downtimeMs: report.downtimeMs ?? undefined,
    });
    return report;
  }

  /** The image a failed or rolled-back update pulled joins the bounded list of such images. */
  private async pruneFailedImage(): Promise<void> {
    const imageId = this.pulledImageId;
    if (!imageId || !this.deps.failedImages) return;
    try {
      const last = await this.deps.lastUpdate.read();
      const ours = last?.container === this.config.container ? last : null;
      const protectedIds = new Set(
        [
          this.journal.previousImageId,
          ours?.imageId,
          ours?.previousImageId,
          ...(ours?.recentImageIds ?? []),
        ].filter((id): id is string => Boolean(id)),
      );
      await pruneFailedImages(this.deps.docker, this.deps.failedImages, this.log, {
        container: this.config.container,
        imageId,
        keepImages: this.config.keepImages,
        protectedIds,
      });
    } catch (err) {
      this.log.warn("could not remove the images of failed updates", { error: errorText(err) });
    }
  }

  private async step<T>(
    name: StepName,
    state: UpdateState | null,
    fn: () => Promise<T>,
    options: { journalBestEffort?: boolean } = {},
  ): Promise<T> {
    const record: StepRecord = { name, startedAt: this.deps.clock.now().toISOString() };
    const previousStep = this.journal.step;
    this.journal.steps.push(record);
    this.journal.step = name;
    try {
      await this.deps.journal.write(this.journal);
    } catch (err) {
      // Undoing must not wait for a disk with room for the journal.
      if (!options.journalBestEffort) {
        // The step never ran: the rollback must not undo it (a "stop" there stops the bot).
        this.journal.steps.pop();
        this.journal.step = previousStep;
        throw err;
      }
      this.log.error("cannot write the journal; going on with the rollback", {
        error: errorText(err),
      });
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
      record.detail = errorText(err);
      throw err;
    } finally {
      record.finishedAt = this.deps.clock.now().toISOString();
    }
  }

  private async writeProgress(state: UpdateState) {
    // Progress: the update has not ended, so no finish time and no error yet.
    const report = this.report("failed", this.journal.startedAt, null);
    const status = {
      ...statusOfReport(report),
      state,
      finishedAt: null,
      durationMs: null,
      downtimeMs: null,
      error: null,
    };
    await this.deps.status.write(status).catch((e) =>
      this.log.warn("cannot write the status file", { error: errorText(e) })
    );
  }

  private warn(text: string) {
    this.warnings.push(text);
    this.log.warn(text);
  }

  private async removeNew() {
    if (this.journal.newContainerId) {
      await this.deps.docker.removeContainer(this.journal.newContainerId, { force: true });
    }
  }
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

/** A registry's refusal for want of (valid) credentials, as the daemon words it. */
const AUTH_REFUSED = /unauthorized|authentication required|no basic auth|denied/i;

/** A connection-level Docker failure (no HTTP answer at all). */
export function isUnreachable(err: unknown): boolean {
  return err instanceof DockerError && err.status === undefined &&
    /reach|connect|socket/i.test(err.message);
}
