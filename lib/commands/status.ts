/**
 * `hyperbot-ops status`: one screen with ✅/❌ marks, or `--json`.
 */

import { CronDirTable } from "../adapters/crontab.ts";
import { SocketDockerEngine } from "../adapters/docker_engine.ts";
import { FileStatusStore } from "../adapters/files.ts";
import { SystemctlServiceManager } from "../adapters/systemctl.ts";
import { loadConfig, socketPath } from "../config.ts";
import { FileHeartbeatStore } from "../watch/heartbeat.ts";
import { gatherStatus, LOG_TAIL_LINES, renderStatus } from "../status.ts";
import { systemClock } from "../state.ts";
import { UsageError } from "../errors.ts";
import { printableJson } from "../printable.ts";
import { type Command, CONFIG_FLAGS_HELP, configFlags, parseCommandArgs } from "./common.ts";

const HELP = `hyperbot-ops status: the monitor, the bot and the last update on one screen

Usage: hyperbot-ops status [--json] [--lines N] [config flags]

Shows: the systemd service and since when, enabled at boot, the cron entry, the watcher's
heartbeat, the bot container with its image and version, the last update and its result,
and the last lines of monitor.log, update.log and health-check.log. Changes nothing.

Options:
  --json      machine-readable: top-level keys service, cron, container, watcher, lastUpdate, logs
  --lines N   log lines per file (default ${LOG_TAIL_LINES})

Exit codes: 0 all well, 1 something is wrong (a ❌ line), 3 configuration error.
No colour when stdout is not a terminal or NO_COLOR is set.

${CONFIG_FLAGS_HELP}`;

export const statusCommand: Command = {
  name: "status",
  summary: "show the monitor, the bot container, the last update and recent logs",
  help: HELP,
  async run(argv, ctx) {
    const { values } = parseCommandArgs("status", argv, {
      json: { type: "boolean" },
      lines: { type: "string" },
    });
    const lines = values.lines === undefined ? LOG_TAIL_LINES : Number(values.lines);
    if (!Number.isInteger(lines) || lines < 0 || lines > 1000) {
      throw new UsageError("--lines expects a whole number from 0 to 1000", { object: "status" });
    }
    const { flags, configFile } = configFlags(values);
    const config = loadConfig({ flags, configFile, env: ctx.env });
    const docker = new SocketDockerEngine({
      socketPath: socketPath(config.dockerHost),
      requestTimeoutMs: 10_000,
    });
    try {
      const report = await gatherStatus(
        {
          services: new SystemctlServiceManager(),
          cron: new CronDirTable(),
          heartbeat: new FileHeartbeatStore(config.stateDir),
          docker,
          statusFile: new FileStatusStore(config.dataDir),
          tail: tailLines,
          clock: systemClock,
        },
        config,
        { logLines: lines },
      );
      if (values.json) {
        const { ok, checkedAt, service, cron, container, watcher, lastUpdate, logs } = report;
        ctx.stdout(
          printableJson(
            { ok, checkedAt, service, cron, container, watcher, lastUpdate, logs },
            2,
          ),
        );
      } else {
        const color = Deno.stdout.isTerminal() && !ctx.env.NO_COLOR;
        ctx.stdout(renderStatus(report, { color }));
      }
      return report.ok ? 0 : 1;
    } finally {
      docker.close();
    }
  },
};

/** The last `n` lines of a file, reading at most its last 64 KiB; null when absent. */
async function tailLines(path: string, n: number): Promise<string[] | null> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  try {
    const size = (await file.stat()).size;
    const start = Math.max(0, size - 64 * 1024);
    await file.seek(start, Deno.SeekMode.Start);
    const buf = new Uint8Array(size - start);
    let read = 0;
    while (read < buf.length) {
      const got = await file.read(buf.subarray(read));
      if (got === null) break;
      read += got;
    }
    const text = new TextDecoder().decode(buf.subarray(0, read));
    const all = text.split("\n").filter((l) => l !== "");
    if (start > 0) all.shift(); // probably cut in the middle
    return n === 0 ? [] : all.slice(-n);
  } finally {
    file.close();
  }
}
