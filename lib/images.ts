/** Keeping the images an update may need, and removing the older ones. */

import type { Images } from "./docker.ts";
import type { Logger } from "./log.ts";

/**
 * Removes images of `repository` older than the ones kept, and `extraCandidates` (image IDs
 * that fell out of use, e.g. an untagged image from a re-pull of the same tag). Keeps the
 * first `keepImages` of `keepIds` (current first, then previous) and anything newer than the
 * newest kept image. Images in use or with several tags are left alone. Returns removed IDs.
 */
export async function pruneImages(
  images: Images,
  logger: Logger,
  options: {
    repository: string;
    keepIds: string[];
    keepImages: number;
    extraCandidates?: string[];
  },
): Promise<string[]> {
  const keep = new Set(options.keepIds.slice(0, Math.max(1, options.keepImages)));
  const listed = await images.listImages(options.repository);
  const keptCreated = listed.filter((i) => keep.has(i.id)).map((i) => Date.parse(i.created));
  const newestKept = keptCreated.length ? Math.max(...keptCreated) : Infinity;
  const candidates = new Set<string>(
    listed
      .filter((i) => !keep.has(i.id) && Date.parse(i.created) <= newestKept)
      .map((i) => i.id),
  );
  for (const id of options.extraCandidates ?? []) if (id && !keep.has(id)) candidates.add(id);

  const removed: string[] = [];
  for (const id of candidates) {
    if (await images.removeImage(id)) {
      removed.push(id);
      logger.info("removed old image", { imageId: id });
    } else {
      logger.debug("kept image (in use or several tags)", { imageId: id });
    }
  }
  return removed;
}
