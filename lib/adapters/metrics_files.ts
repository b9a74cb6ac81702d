/**
 * The metrics' files: the counters in `<stateDir>/metrics.json` behind an flock on
 * `<stateDir>/metrics.lock` (shared by watch, update and health; the kernel drops it when a
 * process dies), and the node_exporter textfile, replaced atomically.
 */

import { dirname, join } from "node:path";
import { ensureDir, readJsonOrNull, withFileLock, writeFileAtomic } from "./files.ts";
import { type Counters, parseCounters } from "../metrics/counters.ts";
import type { CounterStore, MetricsFile } from "../metrics/recorder.ts";

export const METRICS_STATE_FILE = "metrics.json";
export const METRICS_LOCK_FILE = "metrics.lock";

export class FileCounterStore implements CounterStore {
  constructor(private readonly stateDir: string) {}

  private get path() {
    return join(this.stateDir, METRICS_STATE_FILE);
  }

  async update(fn: (counters: Counters) => Promise<Counters>): Promise<void> {
    await ensureDir(this.stateDir);
    // Held for a read, a render and two small writes: the wait is short.
    await withFileLock(join(this.stateDir, METRICS_LOCK_FILE), 0o640, async () => {
      const before = await this.read();
      const after = await fn(before);
      if (JSON.stringify(after) !== JSON.stringify(before)) {
        await writeFileAtomic(this.path, JSON.stringify(after) + "\n", { mode: 0o640 });
      }
    });
  }

  async read(): Promise<Counters> {
    return parseCounters(await readJsonOrNull(this.path).catch(() => null));
  }
}

/** node_exporter's textfile collector reads `*.prom`; the temp file (`.<uuid>.tmp`) it skips. */
export class TextfileMetricsFile implements MetricsFile {
  constructor(readonly path: string) {}

  async write(text: string): Promise<void> {
    await makeReadableDirs(dirname(this.path));
    await writeFileAtomic(this.path, text, { mode: 0o644 });
  }
}

/**
 * Creates the folder and its missing parents with mode 0755, so node_exporter (another user)
 * can reach the file: the process umask (027) would leave them 0750. Existing folders are left
 * as their owner set them.
 */
async function makeReadableDirs(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; d !== dirname(d); d = dirname(d)) {
    try {
      await Deno.stat(d);
      break;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      missing.unshift(d);
    }
  }
  for (const d of missing) {
    await Deno.mkdir(d).catch((err) => {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    });
    await Deno.chmod(d, 0o755);
  }
}
