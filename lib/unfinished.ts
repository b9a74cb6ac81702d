/**
 * An update the journal holds while no process holds the update lock: the process running it
 * was killed (SIGKILL, OOM, power loss) and nothing has finished it yet. The bot may be stopped
 * or renamed. `status` and `health` say so, with what finishes it.
 */

import type { JournalEntry } from "./update/report.ts";
import type { LockHolder } from "./state.ts";
import { errorText } from "./errors.ts";

export interface UnfinishedUpdate {
  id: string;
  /** The step the journal records as running when the process stopped. */
  step: string;
  startedAt: string;
  image: string | null;
  previousImage: string | null;
  /** What finishes it. */
  hint: string;
}

export interface UnfinishedDeps {
  journal: { read(): Promise<JournalEntry | null> };
  lock: { holder(): Promise<LockHolder | null> };
}

/** The interrupted update, or null when the journal is empty or a live update owns it. Never throws. */
export async function findUnfinished(
  deps: UnfinishedDeps,
  service: string,
): Promise<UnfinishedUpdate | null> {
  let journal: JournalEntry | null;
  try {
    journal = await deps.journal.read();
  } catch (err) {
    // An unreadable journal is unfinished too: nothing can finish it without the operator.
    return {
      id: "?",
      step: "?",
      startedAt: "?",
      image: null,
      previousImage: null,
      hint: errorText(err),
    };
  }
  if (!journal) return null;
  // An update that runs now holds the lock and owns its journal.
  const holder = await deps.lock.holder().catch(() => null);
  if (holder !== null) return null;
  return {
    id: journal.id,
    step: journal.finished ? "result" : journal.step,
    startedAt: journal.startedAt,
    image: journal.image,
    previousImage: journal.previousImage,
    hint: `the watcher finishes it (it tries again on every rescan; if it is not running: ` +
      `'systemctl restart ${service}'), or 'hyperbot-ops update' finishes it before it starts`,
  };
}

/** One sentence for status and health. */
export function describeUnfinished(u: UnfinishedUpdate): string {
  return `update ${u.id} was interrupted at step ${u.step} (started ${u.startedAt}` +
    `${u.image ? `, to ${u.image}` : ""}); the journal holds it unfinished: ${u.hint}`;
}
