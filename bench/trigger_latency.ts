/**
 * Trigger detection latency: from the moment the bench starts writing
 * `<dataDir>/.update_trigger` to the moment it is gone from that name (the watcher renamed it
 * to its staging name to claim it). The bench polls for that every ~1 ms.
 *
 * Every trigger names a repository the watcher does not allow, so the watcher claims it,
 * rejects it (status "rejected") and is idle again within milliseconds: no update runs, and
 * the claim path measured is exactly the one a real update request takes.
 *
 *   inotify  the real `hyperbot-ops watch` process (a subprocess, as under systemd); then again
 *            with 5 000 unrelated files and a FIFO behind a link in dataDir (hostile).
 *   rescan   the same watch loop (lib/watch/loop.ts runWatch, the real FileTriggerInbox and status
 *            files) in this process, with a FolderWatcher that never reports an event: what
 *            happens when inotify events are lost. The watcher has no flag to turn events off,
 *            so this is the honest way to time the safety net. Each loop restarts its rescan
 *            timer after a claim, so triggers are written at a uniformly random moment of the
 *            interval, and several loops run side by side to collect the samples in less time.
 *   sleep 5  a shell loop like today's trigger-update-monitor.sh (`[ -f ] && mv; sleep 5`).
 */

import { join } from "node:path";
import { FileTriggerInbox } from "../lib/adapters/trigger_inbox.ts";
import { FileStatusStore, TRIGGER_FILE } from "../lib/adapters/files.ts";
import type { FolderWatcher } from "../lib/adapters/fs_watcher.ts";
import { loadConfig } from "../lib/config.ts";
import { readTextFileOrNull, realPath } from "../lib/adapters/process.ts";
import { FileHeartbeatStore } from "../lib/watch/heartbeat.ts";
import { silentLogger } from "../lib/log.ts";
import { systemClock } from "../lib/state.ts";
import { DEFAULT_WATCH_OPTIONS, runWatch } from "../lib/watch/loop.ts";
import {
  makeSandbox,
  percentile,
  type Sandbox,
  sleep,
  spawnCli,
  stopChild,
  waitForGone,
  waitForWatchState,
} from "./support.ts";

/** Allowed by nobody: the watcher claims it, then rejects it. */
export const REJECTED_IMAGE = "127.0.0.1:5000/hbt-bench-not-allowed/app:v1";
export const ALLOWED_REPOSITORY = "127.0.0.1:5000/hbt-bench/bot";

export interface LatencyResult {
  label: string;
  samples: number[];
  p50: number;
  p99: number;
  max: number;
  note: string;
  /** From SIGTERM to the exit of the `watch` process, where one was measured. */
  stopMs?: number;
}

function summarize(label: string, samples: number[], note: string): LatencyResult {
  return {
    label,
    samples,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: Math.max(...samples),
    note,
  };
}

async function writeTrigger(dataDir: string, content: string): Promise<number> {
  const t0 = performance.now();
  await Deno.writeTextFile(join(dataDir, TRIGGER_FILE), content);
  return t0;
}

/** Unrelated files planted in dataDir for the hostile variant. */
export const HOSTILE_FILES = 5_000;

/**
 * What an attacker in the bot's container leaves in dataDir for the hostile variant:
 * HOSTILE_FILES unrelated files, and a FIFO behind a link (`sub/fifo`, `lnk -> sub/fifo`: this
 * stalled Deno.watchFs until the 30 s rescan) plus a bare FIFO.
 */
async function plantHostileEntries(dataDir: string): Promise<void> {
  for (let i = 0; i < HOSTILE_FILES; i++) {
    await Deno.writeTextFile(join(dataDir, `unrelated-${i}.json`), `{"n":${i}}\n`);
  }
  await Deno.mkdir(join(dataDir, "sub"));
  for (const fifo of [join(dataDir, "sub", "fifo"), join(dataDir, "fifo")]) {
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    if (!mk.success) throw new Error(`mkfifo ${fifo} failed`);
  }
  await Deno.symlink("sub/fifo", join(dataDir, "lnk"));
}

/**
 * The real `hyperbot-ops watch` process, woken by inotify. `hostile`: with the entries of
 * plantHostileEntries in dataDir before the watcher starts and throughout.
 */
export async function measureInotify(count: number, hostile = false): Promise<LatencyResult> {
  const box = await makeSandbox(hostile ? "hostile" : "inotify", [
    "--container",
    "hbt-bench-no-such-bot",
    "--allowed-image",
    ALLOWED_REPOSITORY,
  ]);
  if (hostile) await plantHostileEntries(box.dataDir);
  const watch = spawnCli(["watch", ...box.flags]);
  let stopMs: number | undefined;
  try {
    await waitForWatchState(box.stateDir, "idle");
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = await writeTrigger(box.dataDir, `${REJECTED_IMAGE}\n`);
      const t1 = await waitForGone(join(box.dataDir, TRIGGER_FILE), 10_000);
      samples.push(t1 - t0);
      // Let the rejection finish, and vary the phase against the 2 s rescan timer.
      await sleep(40 + Math.random() * 120);
    }
    await checkRejected(box);
    const stopAt = performance.now();
    await stopChild(watch);
    stopMs = performance.now() - stopAt;
    const result = hostile
      ? summarize(
        `hyperbot-ops watch (inotify), ${HOSTILE_FILES} unrelated files and a FIFO behind a link in dataDir`,
        samples,
        "as above, with those entries planted before the start",
      )
      : summarize(
        "hyperbot-ops watch (inotify)",
        samples,
        "real `watch` subprocess; triggers name a repository not allowed: claimed, then rejected",
      );
    return { ...result, stopMs };
  } finally {
    if (stopMs === undefined) await stopChild(watch);
    await Deno.remove(box.base, { recursive: true }).catch(() => {});
  }
}

/** Makes sure the watcher really claimed and rejected the triggers (not some other process). */
async function checkRejected(box: Sandbox): Promise<void> {
  const status = JSON.parse(await Deno.readTextFile(join(box.dataDir, ".update_status.json")));
  if (status.state !== "rejected") {
    throw new Error(`expected the last trigger to be rejected, status says '${status.state}'`);
  }
}

/** A FolderWatcher that never reports anything: inotify events lost. */
const silentWatcher: FolderWatcher = {
  watch() {
    let end = () => {};
    const ended = new Promise<void>((resolve) => (end = resolve));
    return {
      ended,
      close: () => Promise.resolve(end()),
    };
  },
};

/** The rescan safety net alone: `parallel` watch loops in this process, events never delivered. */
export async function measureRescan(count: number, parallel: number): Promise<LatencyResult> {
  const rescanMs = DEFAULT_WATCH_OPTIONS.rescanMs;
  const perLoop = Math.ceil(count / parallel);
  const stop = new AbortController();
  const boxes: Sandbox[] = [];
  const loops: Promise<unknown>[] = [];
  const samples: number[] = [];
  try {
    const runs = Array.from({ length: parallel }, async () => {
      const box = await makeSandbox("rescan");
      boxes.push(box);
      const config = loadConfig({
        configFile: box.flags[1],
        flags: { baseDir: box.base, stateDir: box.stateDir, allowedImages: [ALLOWED_REPOSITORY] },
        env: {},
        readTextFile: readTextFileOrNull,
        realPath,
      });
      const status = new FileStatusStore(config.dataDir);
      loops.push(runWatch(
        {
          inbox: new FileTriggerInbox(config.dataDir, config.stateDir),
          watcher: silentWatcher,
          clock: systemClock,
          logger: silentLogger,
          heartbeat: new FileHeartbeatStore(config.stateDir),
          status,
          update: () => Promise.reject(new Error("the bench never asks for a real update")),
          recover: () => Promise.resolve(null),
          ping: () => Promise.resolve(),
          pid: Deno.pid,
        },
        config,
        stop.signal,
      ));
      await waitForWatchState(box.stateDir, "idle");
      for (let i = 0; i < perLoop; i++) {
        // A trigger arrives at a random moment of the rescan interval.
        await sleep(Math.random() * rescanMs);
        const t0 = await writeTrigger(box.dataDir, `${REJECTED_IMAGE}\n`);
        const t1 = await waitForGone(join(box.dataDir, TRIGGER_FILE), rescanMs * 3 + 2_000);
        samples.push(t1 - t0);
      }
      await sleep(200);
      await checkRejected(box);
    });
    await Promise.all(runs);
    return summarize(
      `safety-net rescan only (every ${rescanMs / 1000} s)`,
      samples,
      `lib/watch/loop.ts loop in-process with inotify events dropped; ${parallel} loops side by side`,
    );
  } finally {
    stop.abort();
    await Promise.allSettled(loops);
    for (const box of boxes) await Deno.remove(box.base, { recursive: true }).catch(() => {});
  }
}

const POLLER = `
trigger="$1"; claimed="$2"
trap 'kill $! 2>/dev/null; exit 0' TERM
while true; do
  if [ -f "$trigger" ]; then mv "$trigger" "$claimed/trigger.$(date +%s%N)"; fi
  sleep 5 & wait $!
done
`;

/** Today's way: a shell loop that looks every 5 s. `parallel` loops, `count` samples in all. */
export async function measureShellPoll(count: number, parallel: number): Promise<LatencyResult> {
  const perLoop = Math.ceil(count / parallel);
  const samples: number[] = [];
  const boxes: Sandbox[] = [];
  const children: Deno.ChildProcess[] = [];
  try {
    await Promise.all(Array.from({ length: parallel }, async () => {
      const box = await makeSandbox("poll");
      boxes.push(box);
      const trigger = join(box.dataDir, TRIGGER_FILE);
      const child = new Deno.Command("bash", {
        args: ["-c", POLLER, "poller", trigger, box.stateDir],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      children.push(child);
      for (let i = 0; i < perLoop; i++) {
        await sleep(Math.random() * 5_000);
        const t0 = await writeTrigger(box.dataDir, `${REJECTED_IMAGE}\n`);
        const t1 = await waitForGone(trigger, 12_000);
        samples.push(t1 - t0);
      }
    }));
    return summarize(
      "reference: shell loop with `sleep 5`",
      samples,
      `${parallel} bash loops side by side; expected uniform on 0–5 s: p50 2.5 s, p99 4.95 s`,
    );
  } finally {
    for (const child of children) await stopChild(child, 1_000);
    for (const box of boxes) await Deno.remove(box.base, { recursive: true }).catch(() => {});
  }
}
