/**
 * `hyperbot-ops health`: what cron runs. Checks the monitor service and its heartbeat,
 * restarts a stopped, failed or hung watcher, reports the bot container.
 */

import { FileHeartbeatStore } from "../watch/heartbeat.ts";
import { SocketDockerEngine } from "../adapters/docker_engine.ts";
import { SystemctlServiceManager } from "../adapters/systemctl.ts";
import { runCommand } from "../adapters/run_command.ts";
import { stopTimeoutSeconds } from "../install/plan.ts";
import { loadConfig, socketPath } from "../config.ts";
import { checkHealth, renderHealth } from "../health.ts";
import { loggerFor, setupLogging } from "../log.ts";
import { printableFields, printableJson } from "../printable.ts";
import { systemClock } from "../state.ts";
import { type Command, CONFIG_FLAGS_HELP, configFlags, parseCommandArgs } from "./common.ts";

const HELP = `hyperbot-ops health: check the update monitor and repair it

Usage: hyperbot-ops health [--no-fix] [--json] [--quiet] [config flags]

Checks that the systemd service is active and the watcher's heartbeat is fresh (< 90 s).
A stopped, failed or hung watcher is restarted through systemctl and the result checked.
Reports the bot container's state; it never restarts the bot.
Every run is logged to <logDir>/health-check.log. Cron runs it every 5 minutes.

Options:
  --no-fix    only report, change nothing
  --json      print the report as JSON
  --quiet     print nothing when all is well (cron mails only problems)

Exit codes: 0 all well or repaired, 1 something is wrong that health could not repair,
3 configuration error.

${CONFIG_FLAGS_HELP}`;

export const healthCommand: Command = {
  name: "health",
  summary: "check the monitor, restart it when stopped or hung (cron runs this)",
  help: HELP,
  async run(argv, ctx) {
    const { values } = parseCommandArgs("health", argv, {
      "no-fix": { type: "boolean" },
      json: { type: "boolean" },
      quiet: { type: "boolean", short: "q" },
    });
    const { flags, configFile } = configFlags(values);
    const config = loadConfig({ flags, configFile, env: ctx.env });
    // stdout carries the result (and cron's mail); the log file gets every run.
    await setupLogging({ logDir: config.logDir, files: ["health"], stderrLevel: "fatal" });
    const docker = new SocketDockerEngine({
      socketPath: socketPath(config.dockerHost),
      requestTimeoutMs: 10_000,
    });
    try {
      const report = await checkHealth(
        {
          services: new SystemctlServiceManager(
            "systemctl",
            runCommand,
            stopTimeoutSeconds(config),
          ),
          heartbeat: new FileHeartbeatStore(config.stateDir),
          docker,
          clock: systemClock,
          logger: loggerFor("health"),
        },
        config,
        { fix: !values["no-fix"] },
      );
      if (values.json) ctx.stdout(printableJson(report, 2));
      else if (!values.quiet || !report.ok || report.repair.attempted) {
        ctx.stdout(renderHealth(printableFields(report)));
      }
      return report.ok ? 0 : 1;
    } finally {
      docker.close();
    }
  },
};
