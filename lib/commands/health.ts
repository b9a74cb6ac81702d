/**
 * `hyperbot-ops health`: what cron runs. Checks the monitor service and its heartbeat,
 * restarts a stopped, failed or hung watcher, reports the bot container.
 */

import { checkHealth, renderHealth } from "../health.ts";
import { loggerFor, setupLogging } from "../log.ts";
import { printableFields, printableJson } from "../printable.ts";
import { systemClock } from "../state.ts";
import { notifyHealth } from "../notify/hooks.ts";
import { defineCommand } from "./common.ts";

export const healthCommand = defineCommand({
  name: "health",
  summary: "check the monitor, restart it when stopped or hung (cron runs this)",
  usage: "[--no-fix] [--json] [--quiet]",
  description: `
Checks that the systemd service is active and the watcher's heartbeat is fresh (< 90 s).
A stopped, failed or hung watcher is restarted through systemctl and the result checked.
Reports the bot container's state; it never restarts the bot.
Every run is logged to <logDir>/health-check.log. Cron runs it every 5 minutes.`,
  options: {
    "no-fix": {
      type: "boolean",
      help: "only report, change nothing: no restart, no metrics, no ping or notification\n" +
        "(the check is still logged to health-check.log)",
    },
    json: { type: "boolean", help: "print the report as JSON" },
    quiet: {
      type: "boolean",
      short: "q",
      help: "print nothing when all is well (cron mails only problems)",
    },
  },
  exitCodes: {
    0: "all well or repaired",
    1: "something is wrong that health could not repair",
    2: "bad usage",
    3: "configuration error",
  },
  async run({ values, config }, ctx) {
    const host = ctx.host(config());
    // stdout carries the result (and cron's mail); the log file gets every run.
    await setupLogging({ logDir: host.config.logDir, files: ["health"], stderrLevel: "fatal" });
    const fix = !values["no-fix"];
    try {
      const report = await checkHealth(
        {
          services: host.services(),
          heartbeat: host.heartbeat(),
          docker: host.docker({ requestTimeoutMs: 10_000 }),
          clock: systemClock,
          logger: loggerFor("health"),
          unfinished: { journal: host.journal(), lock: host.updateLock() },
        },
        host.config,
        { fix },
      );
      // --no-fix changes nothing: its check is logged (health-check.log), but it is not cron's
      // run: no metrics (a manual check must not hide a cron entry that stopped running), no
      // ping of the dead-man's switch and no delivery of queued notifications.
      if (fix) {
        const metrics = host.metrics(loggerFor("health"));
        metrics.record({ kind: "health", at: report.checkedAt, repaired: report.repair.attempted });
        await metrics.flush();
        await notifyHealth(host.notifier(loggerFor("health")), report);
      }
      if (values.json) ctx.stdout(printableJson(report, 2));
      else if (!values.quiet || !report.ok || report.repair.attempted) {
        ctx.stdout(renderHealth(printableFields(report)));
      }
      return report.ok ? 0 : 1;
    } finally {
      host.close();
    }
  },
});
