/** Keeping the images an update may need, and removing the older ones. */

import type { Images } from "../docker.ts";
import type { Logger } from "../log.ts";
import type { FailedImagesStore } from "../state.ts";

/**
 * Removes the images this container ran before, beyond the newest `keepImages` of
 * `deployedIds` (newest first: the one it runs now, then the previous, …). Only images that
 * were deployed to this container are ever candidates: an image pulled ahead of a rollout, or
 * used by anything else, is never touched. Images in use or with several tags are left
 * alone by the daemon. Returns the removed IDs.
 */
export async function pruneImages(
  images: Images,
  logger: Logger,
  options: { deployedIds: string[]; keepImages: number },
): Promise<string[]> {
  const keep = Math.max(1, options.keepImages);
  const removed: string[] = [];
  for (const id of options.deployedIds.slice(keep)) {
    if (await images.removeImage(id)) {
      removed.push(id);
      logger.info("removed old image", { imageId: id });
    } else {
      logger.debug("kept image (in use, several tags, or already gone)", { imageId: id });
    }
  }
  return removed;
}

/**
 * Remembers `imageId`, pulled for an update of `container` that failed or was rolled back, and
 * removes the older such images beyond the newest `keepImages` (the newest stay, so a retry of
 * the same tag does not download it again). Never removed: an image in `protectedIds` (the
 * image the bot runs, the rollback target, the images deployed to it, which keepImages counts
 * on its own: they leave this list) and, as the daemon refuses, an image some container uses
 * or several repositories tag (it stays listed and is tried again next time).
 * Returns the removed IDs.
 */
export async function pruneFailedImages(
  images: Images,
  store: FailedImagesStore,
  logger: Logger,
  options: { container: string; imageId: string; keepImages: number; protectedIds: Set<string> },
): Promise<string[]> {
  const earlier = await store.read();
  const listed = earlier?.container === options.container ? earlier.imageIds : [];
  const candidates = [...new Set([options.imageId, ...listed])].filter((id) =>
    !options.protectedIds.has(id)
  );
  const keep = Math.max(1, options.keepImages);
  const kept = candidates.slice(0, keep);
  const removed: string[] = [];
  for (const id of candidates.slice(keep)) {
    if (await images.removeImage(id)) {
      removed.push(id);
      logger.info("removed the image of a failed update", { imageId: id });
    } else if (await images.inspectImage(id)) {
      kept.push(id); // in use or tagged by several repositories: tried again next time
    }
  }
  await store.write({ container: options.container, imageIds: kept.slice(0, MAX_FAILED_LISTED) });
  return removed;
}

/** The most failed images remembered (the list cannot grow without bound either). */
const MAX_FAILED_LISTED = 50;
