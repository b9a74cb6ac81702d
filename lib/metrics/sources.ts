/**
 * Where the metrics read what they do not count themselves: the bot container (as status and
 * health see it), the watcher's heartbeat, and the journal with the update lock.
 */

import type { Containers } from "../docker.ts";
import { inspectContainerSafely } from "../health.ts";
import type { JournalEntry } from "../update/report.ts";
import type { LockHolder } from "../state.ts";
import type { Heartbeat } from "../watch/heartbeat.ts";
import type { MetricsSources } from "./recorder.ts";

export interface MetricsSourceDeps {
  docker: Pick<Containers, "inspectContainer">;
  heartbeat: { read(): Promise<Heartbeat | null> };
  journal: { read(): Promise<JournalEntry | null> };
  lock: { holder(): Promise<LockHolder | null> };
}

export function metricsSources(deps: MetricsSourceDeps, container: string): MetricsSources {
  return {
    async container() {
      const c = await inspectContainerSafely(deps.docker, container);
      return {
        name: container,
        found: c.found,
        running: c.running,
        image: c.image,
        version: c.version,
      };
    },
    async heartbeatAt() {
      const beat = await deps.heartbeat.read();
      const ms = beat ? Date.parse(beat.timestamp) : NaN;
      return Number.isFinite(ms) ? ms / 1000 : null;
    },
    async rollbackPending() {
      const journal = await deps.journal.read();
      if (!journal || journal.finished) return false;
      // An update that runs now holds the lock and owns its journal: not pending.
      return (await deps.lock.holder()) === null;
    },
  };
}
