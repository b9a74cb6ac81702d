/**
 * The watcher at rest: CPU time and resident memory of a real `hyperbot-ops watch` process
 * over an idle window, from /proc/<pid>/stat (utime + stime) and /proc/<pid>/status (VmRSS),
 * and the context switches of its main thread: a busy-polling loop would show up there.
 */

import { join } from "node:path";
import { ALLOWED_REPOSITORY } from "./trigger_latency.ts";
import {
  clockTicks,
  contextSwitches,
  cpuTicks,
  makeSandbox,
  rssKiB,
  type Sandbox,
  sleep,
  spawnCli,
  stopChild,
  waitForWatchState,
} from "./support.ts";

export interface IdleResult {
  seconds: number;
  cpuPercent: number;
  cpuMs: number;
  rssMaxMiB: number;
  rssEndMiB: number;
  wakeupsPerSecond: number;
}

/** A running watcher on its own sandbox; stop it with `stop()`. */
export interface IdleWatcher {
  box: Sandbox;
  pid: number;
  stop(): Promise<void>;
}

/**
 * With `metrics`, the watcher keeps a metrics file (metricsFile in the sandbox): each heartbeat
 * then also inspects the container and rewrites the file.
 */
export async function startIdleWatcher(
  container: string,
  options: { metrics?: boolean } = {},
): Promise<IdleWatcher> {
  const box = await makeSandbox(options.metrics ? "idle-metrics" : "idle", [
    "--container",
    container,
    "--allowed-image",
    ALLOWED_REPOSITORY,
  ]);
  if (options.metrics) box.flags.push("--metrics-file", metricsFileOf(box));
  const child = spawnCli(["watch", ...box.flags]);
  await waitForWatchState(box.stateDir, "idle");
  return {
    box,
    pid: child.pid,
    async stop() {
      await stopChild(child);
      await Deno.remove(box.base, { recursive: true }).catch(() => {});
    },
  };
}

/** The metrics file of a watcher started with `metrics`. */
export function metricsFileOf(box: Sandbox): string {
  return join(box.base, "textfile_collector", "hyperbot_ops.prom");
}

/** Measures `watcher` for `seconds`, after letting start-up settle for 2 s. */
export async function measureIdle(watcher: IdleWatcher, seconds: number): Promise<IdleResult> {
  const hz = await clockTicks();
  await sleep(2_000);
  const ticks0 = await cpuTicks(watcher.pid);
  const switches0 = await contextSwitches(watcher.pid);
  const t0 = performance.now();
  let rssMax = await rssKiB(watcher.pid);
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    await sleep(Math.min(1_000, end - performance.now()));
    rssMax = Math.max(rssMax, await rssKiB(watcher.pid));
  }
  const elapsed = (performance.now() - t0) / 1000;
  const ticks = (await cpuTicks(watcher.pid)) - ticks0;
  const switches = (await contextSwitches(watcher.pid)) - switches0;
  const rssEnd = await rssKiB(watcher.pid);
  const cpuSeconds = ticks / hz;
  return {
    seconds: elapsed,
    cpuPercent: (cpuSeconds / elapsed) * 100,
    cpuMs: cpuSeconds * 1000,
    rssMaxMiB: rssMax / 1024,
    rssEndMiB: rssEnd / 1024,
    wakeupsPerSecond: switches / elapsed,
  };
}

/**
 * The idle figures alone, with metricsFile off and on side by side, on a bot container of its
 * own (so it can run beside a full `deno task bench`):
 *
 *   deno run --allow-all bench/idle.ts [SECONDS]     (default 60)
 *
 * Prints the two rows of the "watcher at rest" table; writes nothing.
 */
if (import.meta.main) {
  const seconds = Number(Deno.args[0] ?? 60);
  const bot = `hbt-bench-idle-bot-${crypto.randomUUID().slice(0, 6)}`;
  const { BENCH_V1, prepareImages } = await import("./downtime.ts");
  const { docker, dockerOk, say } = await import("./support.ts");
  await prepareImages();
  await dockerOk("run", "-d", "--name", bot, BENCH_V1);
  const off = await startIdleWatcher(bot);
  const on = await startIdleWatcher(bot, { metrics: true });
  try {
    say(`idle watchers for ${seconds} s (metricsFile off and on, side by side)`);
    const [a, b] = await Promise.all([measureIdle(off, seconds), measureIdle(on, seconds)]);
    const text = await Deno.readTextFile(metricsFileOf(on.box));
    if (!text.includes("hyperbot_ops_watcher_heartbeat_timestamp_seconds")) {
      throw new Error("the idle watcher with metricsFile wrote no metrics");
    }
    for (const [what, r] of [["metricsFile off", a], ["metricsFile on", b]] as const) {
      console.log(
        `| ${what} | ${r.seconds.toFixed(0)} s | ${r.cpuPercent.toFixed(3)} % | ` +
          `${r.cpuMs.toFixed(0)} ms | ${r.rssMaxMiB.toFixed(1)} MiB | ${
            r.rssEndMiB.toFixed(1)
          } MiB | ` +
          `${r.wakeupsPerSecond.toFixed(1)} |`,
      );
    }
  } finally {
    await off.stop();
    await on.stop();
    await docker("rm", "-f", bot);
  }
}
