/**
 * Pinning: after a verified update (or `update --rollback`), make the container's compose
 * project name the image the bot now runs, so a later `docker compose up -d` keeps it instead
 * of silently going back. One value in one file changes; when that cannot be done safely,
 * nothing changes and a warning names the file and line to edit.
 *
 * `compose` config key: `pin` (default) edits; `warn` only warns when the project names
 * another image; `off` does neither.
 */

import type { ContainerInfo, Containers, Images } from "../docker.ts";
import { errorText } from "../errors.ts";
import type { Logger } from "../log.ts";
// plan.ts (and the yaml package under it) loads only for a compose-managed container: the
// watcher of a plain `docker run` bot never holds it in memory.
import type { FileChange, FileTexts, Place } from "./plan.ts";
import { type ComposeDetection, type ComposeProject, detectComposeProject } from "./project.ts";

export type ComposeMode = "pin" | "warn" | "off";
export const COMPOSE_MODES: readonly ComposeMode[] = ["pin", "warn", "off"];

/** The suffix of the one backup kept beside an edited file. */
export const BACKUP_SUFFIX = ".hyperbot-ops.bak";

/** The operator's compose files, read and replaced with care. */
export interface ComposeFiles {
  /**
   * The text of a file; null when it does not exist. Throws (with the reason) for a file that
   * must not be edited: a symbolic link, not a regular file, too large, not UTF-8.
   */
  read(path: string): Promise<string | null>;
  /**
   * Replaces the file's content atomically (temporary file in the same folder, rename), with
   * the same owner and mode, after copying the current content to `<path>.hyperbot-ops.bak`.
   * Throws, changing nothing, when the file no longer holds `expected` (edited meanwhile).
   */
  replace(path: string, expected: string, next: string): Promise<{ backup: string }>;
}

export interface PinDeps {
  docker: ComposeDocker;
  files: ComposeFiles;
  logger: Logger;
}

export interface PinResult {
  /** The change made, when one was. */
  changed: (Omit<FileChange, "before" | "after"> & { backup: string }) | null;
  /** For the report, the status file, update.log and notification. */
  warnings: string[];
}

const NOTHING: PinResult = { changed: null, warnings: [] };

/**
 * Pins `image` in the compose project of `container`. Never throws: every problem is a
 * warning, and the bot (already updated and verified) is not affected.
 */
export async function pinComposeImage(
  deps: PinDeps,
  mode: ComposeMode,
  container: string,
  image: string,
): Promise<PinResult> {
  if (mode === "off") return NOTHING;
  try {
    const info = await deps.docker.inspectContainer(container);
    const detection = await detect(deps.docker, info);
    if (!detection.managed) return NOTHING;
    if (detection.project === null) {
      return warnOnly(
        deps,
        `${detection.reason}; edit the image in its compose file by hand to ${image} so 'docker compose up -d' keeps this version`,
      );
    }
    const project = detection.project;
    const texts = await readProject(deps.files, project);
    const { checkChange, planPin } = await import("./plan.ts");
    const plan = planPin(project, texts, image);
    if (plan.kind === "agrees") {
      deps.logger.debug("the compose project already names this image", {
        file: plan.source.composeAt.file,
      });
      return NOTHING;
    }
    if (plan.kind === "refused") return warnOnly(deps, refusalText(plan.at, plan.reason, image));
    const { change } = plan;
    if (mode === "warn") {
      return warnOnly(
        deps,
        `compose file not pinned (compose: warn): ${
          where({ file: change.file, line: change.line })
        } ` +
          `names ${change.from}; change it to ${change.to}, or the next 'docker compose up -d' goes back to the old image`,
      );
    }
    const problem = checkChange(project, texts, change, image);
    if (problem) {
      return warnOnly(deps, refusalText({ file: change.file, line: change.line }, problem, image));
    }
    const { backup } = await deps.files.replace(change.file, change.before, change.after);
    deps.logger.info("pinned the image in the compose project", {
      file: change.file,
      line: change.line,
      from: change.from,
      to: change.to,
      backup,
    });
    const { before: _b, after: _a, ...rest } = change;
    return { changed: { ...rest, backup }, warnings: [] };
  } catch (err) {
    return warnOnly(
      deps,
      `could not pin the image in the compose project: ${errorText(err)}; ` +
        `edit its image by hand to ${image} so 'docker compose up -d' keeps this version`,
    );
  }
}

/**
 * The update's hook: after a verified update (outcome `updated`, also for `--rollback` and a
 * recovery that went forward) pins `image` when the update has compose files to work with.
 * Returns the warnings for the report. Never throws.
 */
export async function pinAfterUpdate(
  deps: { docker: ComposeDocker; composeFiles?: ComposeFiles },
  mode: ComposeMode,
  container: string,
  image: string | null,
  logger: Logger,
): Promise<string[]> {
  if (!deps.composeFiles || !image) return [];
  const files = deps.composeFiles;
  const result = await pinComposeImage(
    { docker: deps.docker, files, logger },
    mode,
    container,
    image,
  );
  return result.warnings;
}

export interface ComposeAgreement {
  project: string;
  service: string;
  /** The compose file and line of `image:`, when known. */
  file: string | null;
  line: number | null;
  /** What compose would run, or null when it cannot be told. */
  composeImage: string | null;
  runningImage: string;
  /** true/false, or null when it cannot be told (see reason). */
  agrees: boolean | null;
  reason: string | null;
}

/**
 * For `status`: whether the compose project names the image the container runs. Null for a
 * container compose does not manage. Never throws.
 */
export async function checkComposeAgreement(
  files: ComposeFiles,
  detection: ComposeDetection,
  runningImage: string,
): Promise<ComposeAgreement | null> {
  if (!detection.managed) return null;
  const base = { file: null, line: null, composeImage: null, runningImage, agrees: null };
  if (detection.project === null) {
    return { ...base, project: detection.projectName, service: "?", reason: detection.reason };
  }
  const project = detection.project;
  const names = { project: project.project, service: project.service };
  try {
    const { resolveImageSource, sameImage } = await import("./plan.ts");
    const r = resolveImageSource(project, await readProject(files, project));
    if (!r.ok) return { ...base, ...names, file: r.at.file, line: r.at.line, reason: r.reason };
    return {
      ...names,
      file: r.source.composeAt.file,
      line: r.source.composeAt.line,
      composeImage: r.source.image,
      runningImage,
      agrees: sameImage(r.source.image, runningImage),
      reason: null,
    };
  } catch (err) {
    return { ...base, ...names, reason: errorText(err) };
  }
}

/** `status`'s compose line for `container`: null when `off` or not compose-managed. Never throws. */
export async function composeStatus(
  docker: ComposeDocker,
  files: ComposeFiles,
  mode: ComposeMode,
  container: string,
): Promise<ComposeAgreement | null> {
  if (mode === "off") return null;
  try {
    const info = await docker.inspectContainer(container);
    if (!info) return null;
    return await checkComposeAgreement(files, await detect(docker, info), info.imageRef);
  } catch {
    return null;
  }
}

/** What pinning needs from Docker: the container, and its image's own labels. */
export type ComposeDocker = Pick<Containers, "inspectContainer"> & Pick<Images, "inspectImage">;

/** The compose project of a container, not trusting compose labels its image brought along. */
async function detect(
  docker: ComposeDocker,
  info: ContainerInfo | null,
): Promise<ComposeDetection> {
  if (!info) return { managed: false };
  const plain = detectComposeProject(info.labels, {});
  if (!plain.managed) return plain;
  const image = await docker.inspectImage(info.imageId);
  return detectComposeProject(
    info.labels,
    image ? image.config.Labels : { "com.docker.compose.unknown": "the image is not present" },
  );
}

async function readProject(files: ComposeFiles, project: ComposeProject): Promise<FileTexts> {
  const texts = new Map<string, string | null>();
  for (const file of [...project.configFiles, ...project.envFiles]) {
    if (!texts.has(file)) texts.set(file, await files.read(file));
  }
  return texts;
}

/** The caller logs the warning with the update's fields (update.log) and reports it. */
function warnOnly(_deps: PinDeps, text: string): PinResult {
  return { changed: null, warnings: [text] };
}

function refusalText(at: Place, reason: string, image: string): string {
  return `compose file not pinned, ${where(at)}: ${reason}. Edit it by hand to name ${image}, ` +
    `or the next 'docker compose up -d' goes back to the old image`;
}

function where(at: Place): string {
  return at.line === null ? at.file : `${at.file} line ${at.line}`;
}
