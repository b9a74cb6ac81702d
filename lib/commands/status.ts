/**
 * `hyperbot-ops status`: one screen with ✅/❌ marks, or `--json`.
 */

import { gatherStatus, LOG_TAIL_LINES, renderStatus } from "../status.ts";
import { systemClock } from "../state.ts";
import { UsageError } from "../errors.ts";
import { printableJson } from "../printable.ts";
import { loggerFor } from "../log.ts";
import { defineCommand } from "./common.ts";
import { resolve } from "node:path";
import { DEFAULT_CONFIG_FILE } from "../config.ts";
import { composeStatus } from "../compose/pin.ts";

/** The keys of `status --json`, in their order (documented in docs/operations.md). */
const JSON_KEYS = [
  "ok",
  "checkedAt",
  "service",
  "cron",
  "container",
  "compose",
  "watcher",
  "access",
  "lastUpdate",
  "lastRejection",
  "unfinished",
  "notify",
  "logs",
] as const;

export const statusCommand = defineCommand({
  name: "status",
  summary: "show the monitor, the bot container, the last update and recent logs",
  usage: "[--json] [--lines N]",
  description: `
Shows: the systemd service and since when, enabled at boot, the cron entry, the watcher's
heartbeat, the bot container with its image and version, for a docker compose bot whether
its compose file names the image it runs, the last update and its result (from root's
records in stateDir, never the bot's status file), the last rejected trigger of the last 24 h,
an update a killed process left unfinished in the journal,
and the last lines of monitor.log, update.log and health-check.log. Changes nothing.
No colour when stdout is not a terminal or NO_COLOR is set (the ✅/❌ marks stay: they carry the verdict).`,
  options: {
    json: {
      type: "boolean",
      help:
        "machine-readable: top-level keys service, cron, container, compose, watcher, access,\n" +
        "lastUpdate, lastRejection, unfinished, notify, logs",
    },
    lines: { type: "string", value: "N", help: `log lines per file (default ${LOG_TAIL_LINES})` },
  },
  exitCodes: {
    0: "all well",
    1: "something is wrong (a ❌ line)",
    2: "bad usage",
    3: "configuration error",
  },
  async run({ values, config }, ctx) {
    const lines = values.lines === undefined ? LOG_TAIL_LINES : Number(values.lines);
    if (!Number.isInteger(lines) || lines < 0 || lines > 1000) {
      throw new UsageError("--lines expects a whole number from 0 to 1000", { object: "status" });
    }
    const host = ctx.host(config());
    try {
      const report = await gatherStatus(
        {
          services: host.services(),
          cron: host.cron(),
          heartbeat: host.heartbeat(),
          docker: host.docker({ requestTimeoutMs: 10_000 }),
          records: host.updateRecords(),
          unfinished: { journal: host.journal(), lock: host.updateLock() },
          tail: (path, n) => host.tail(path, n),
          clock: systemClock,
          compose: (container) =>
            composeStatus(host.docker(), host.composeFiles(), host.config.compose, container),
          notify: () => host.notifier(loggerFor("status")).channelStatus(),
        },
        // Relative --config as the operator typed it; the cron entry names the absolute path.
        { ...host.config, configFile: resolve(host.config.configFile ?? DEFAULT_CONFIG_FILE) },
        { logLines: lines },
      );
      if (values.json) {
        const shown = Object.fromEntries(JSON_KEYS.map((key) => [key, report[key]]));
        ctx.stdout(printableJson(shown, 2));
      } else {
        ctx.stdout(renderStatus(report, { color: ctx.color }));
      }
      return report.ok ? 0 : 1;
    } finally {
      host.close();
    }
  },
});
