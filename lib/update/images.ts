/** Keeping the images an update may need, and removing the older ones. */

import type { Images } from "../docker.ts";
import type { Logger } from "../log.ts";

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
