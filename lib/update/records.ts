/**
 * The status file in dataDir is the bot's page, and the bot's container can write it. Root
 * keeps its own record of how each update ended in stateDir (UpdateRecordStore), written from
 * the same data at the same moment, never read back from dataDir: `status` shows that one.
 */

import type { StatusStore, UpdateRecordStore } from "../state.ts";
import type { UpdateState } from "./report.ts";

/** The states an update ends in (a rejection is kept apart: it is the bot's input, not an update). */
export const ENDED_STATES: UpdateState[] = ["succeeded", "unchanged", "rolled_back", "failed"];

/**
 * A status store that also records every ended update and rejection in root's records. The
 * record is written first (it is what the operator's view trusts); a failure of either write
 * is thrown after both were tried. Reads still come from the status file (the bot's view).
 */
export function recordingStatus(status: StatusStore, records: UpdateRecordStore): StatusStore {
  return {
    read: () => status.read(),
    appendHistory: (s) => status.appendHistory(s),
    write: async (s) => {
      const [recorded, written] = await Promise.allSettled([records.record(s), status.write(s)]);
      if (recorded.status === "rejected") throw recorded.reason;
      if (written.status === "rejected") throw written.reason;
    },
  };
}
