/**
 * `hyperbot-ops watch`: the systemd service. Claims the triggers the bot writes and runs the
 * same safe update as `update` for each.
 */

import { FileTriggerInbox } from "../adapters/trigger_inbox.ts";
import { InotifyFolderWatcher } from "../adapters/fs_watcher.ts";
import { FlockUpdateLock, TRIGGER_FILE, WATCH_LOCK_FILE } from "../adapters/files.ts";
import { onStopSignals } from "../adapters/process.ts";
import { loggerFor, setupLogging } from "../log.ts";
import { systemClock } from "../state.ts";
import { recoverFromJournal } from "../update/recover.ts";
import { runUpdate } from "../update/run.ts";
import { runWatch } from "../watch/loop.ts";
import { BACKGROUND_STOP_MS, settleWithin } from "../watch/stop.ts";
import { defineCommand } from "./common.ts";
import { notifyingRecover, notifyingStatus, notifyUpdateEnded } from "../notify/hooks.ts";
import { watchDockerForNotify } from "../notify/docker_outage.ts";

export const watchCommand = defineCommand({
  name: "watch",
  summary: "watch for update triggers from the bot and run them (the systemd service)",
  usage: "",
  description: `
Watches <dataDir>/${TRIGGER_FILE} and runs the same safe update as 'hyperbot-ops update'
for each request the bot writes there (see docs/trigger-protocol.md). Runs under systemd.

  - On start, first finishes or undoes an update a killed process left in the journal.
  - Detects a trigger within 100 ms (inotify), rescans every 30 s (with the heartbeat) as a
    safety net, and acts on a trigger written while it was down as soon as it starts.
  - Claims the trigger by moving it into <stateDir>/claimed/, so a crash neither loses it nor
    runs it twice; shares the update lock with 'update' (one update at a time).
  - Treats the trigger as untrusted: only a regular file of at most 4 KiB holding one image
    reference (plain, or JSON {"image", "id", "force"}) from an allowed repository. Anything
    else is rejected: state "rejected" and the reason in <dataDir>/.update_status.json.
  - Writes a heartbeat to <stateDir>/heartbeat.json every 30 s.
  - With 'notify' configured: delivers notifications in the background (the outbox in
    <stateDir>/notify/), and says when Docker has been unreachable for 5 minutes and when
    it is back.
  - SIGTERM/SIGINT: takes no new trigger; an update in progress finishes first.

Logs to <logDir>/monitor.log (updates to <logDir>/update.log) and stderr.`,
  options: {},
  exitCodes: {
    0: "stopped by a signal",
    2: "bad usage",
    3: "configuration error",
    5: "another watcher runs on this stateDir",
  },
  async run({ config }, ctx) {
    const host = ctx.host(config());
    const cfg = host.config;
    await setupLogging({ logDir: cfg.logDir, files: ["watch", "update"] });
    const log = loggerFor("watch");
    // One watcher per stateDir: a second one (say, run by hand beside the service) would race
    // the first for triggers and overwrite its heartbeat.
    const watcherLock = await new FlockUpdateLock(
      cfg.stateDir,
      WATCH_LOCK_FILE,
      "another watcher is running",
      `the service may run one: 'systemctl stop ${cfg.service}' before running watch by hand`,
    ).acquire({ pid: host.pid, command: "watch", since: new Date().toISOString() });
    // The crash hook (HYPERBOT_OPS_TEST_CRASH_AT) comes with the deps, as for `update`.
    const deps = host.update(loggerFor("update"));
    const metrics = deps.metrics = host.metrics(log, deps.docker);
    const heartbeat = host.heartbeat();
    const notifier = host.notifier(log);

    const stop = new AbortController();
    const removeSignalHandlers = onStopSignals((signal) => {
      if (stop.signal.aborted) {
        log.warn("still finishing the update in progress; the journal makes a kill safe", {
          signal,
        });
        return;
      }
      log.info("stopping: no new triggers; an update in progress finishes first", { signal });
      stop.abort();
    });
    const background: Promise<void>[] = [];
    if (notifier.enabled) {
      background.push(notifier.run(stop.signal));
      background.push(watchDockerForNotify(notifier, () => deps.docker.ping(), stop.signal));
    }
    try {
      await runWatch(
        {
          // What it cannot remove goes to the loop's trigger log (reportLeftTo).
          inbox: new FileTriggerInbox(cfg.dataDir, cfg.stateDir),
          watcher: new InotifyFolderWatcher(),
          clock: systemClock,
          logger: log,
          // Each heartbeat rewrites the metrics file (heartbeat age, the container's state).
          heartbeat: {
            read: () => heartbeat.read(),
            write: async (beat) => {
              await heartbeat.write(beat);
              void metrics.refresh();
            },
          },
          metrics,
          status: notifyingStatus(notifier, deps.status),
          update: async (request) => {
            const report = await runUpdate(deps, cfg, request);
            // After the outcome and the status file; delivery runs in the background.
            void notifyUpdateEnded(notifier, deps.journal, report);
            return report;
          },
          recover: notifyingRecover(notifier, deps.journal, () => recoverFromJournal(deps, cfg)),
          ping: async () => {
            await deps.docker.ping();
          },
          pid: host.pid,
          onIdle: () => {
            const kib = host.releaseCodePages();
            log.debug("released start-up code pages", { kib });
          },
        },
        cfg,
        stop.signal,
      );
      return 0;
    } finally {
      stop.abort();
      // Bounded: SIGTERM must end the process within 2 s; unsent messages stay in the outbox.
      if (!(await settleWithin(background, BACKGROUND_STOP_MS, systemClock))) {
        log.warn("stopping without waiting longer for notification delivery", {
          waitedMs: BACKGROUND_STOP_MS,
        });
      }
      removeSignalHandlers();
      await metrics.flush();
      host.close();
      await watcherLock.release();
    }
  },
});
