/**
 * `hyperbot-ops install`: the systemd unit, the cron entry, the config file and the folders.
 * Without flags it prints the unit and the cron entry; `--dry-run` prints the plan;
 * `--apply` carries it out (idempotent); `--uninstall` removes what install put there.
 */

import { isAbsolute, resolve } from "node:path";
import {
  CONFIG_KEYS,
  type ConfigInput,
  type ConfigKey,
  DEFAULT_CONFIG_FILE,
  DEFAULT_METRICS_FILE,
  loadConfig,
  parseConfigFile,
} from "../config.ts";
import { UsageError } from "../errors.ts";
import { loggerFor, setupLogging } from "../log.ts";
import { systemClock } from "../state.ts";
import {
  applyActions,
  type InstallDeps,
  InstallError,
  readCurrentInstall,
  unfinishedUpdate,
} from "../install/apply.ts";
import { cronFileFor, isCronSchedule } from "../install/cron.ts";
import { refusePrivateTmpPaths } from "../install/private_tmp.ts";
import { HostInstallFiles } from "../adapters/install_files.ts";
import {
  DEFAULT_CRON_FILE,
  DEFAULT_LAUNCHER,
  describeAction,
  desiredInstall,
  planInstall,
  planUninstall,
} from "../install/plan.ts";
import { configFlags, defineCommand } from "./common.ts";
import { basename, dirname } from "node:path";

export const installCommand = defineCommand({
  name: "install",
  summary:
    "install the systemd service and the cron health check (--dry-run, --apply, --uninstall)",
  usage: "[--dry-run | --apply] [--uninstall] [--cron-schedule SPEC] [--metrics]",
  description: `
Installs the update monitor as a systemd service, with a cron health check.
Without --dry-run or --apply: prints the systemd unit and the cron entry, changes nothing.`,
  options: {
    "dry-run": { type: "boolean", help: "print what --apply would change" },
    apply: {
      type: "boolean",
      help: `install: the config file (with the config flags given), the folders,
${DEFAULT_LAUNCHER} (only when run with deno),
the unit (daemon-reload, enable --now) and ${DEFAULT_CRON_FILE}
(${DEFAULT_CRON_FILE}-<service> for another --service).
A second run changes nothing; a changed setting is applied
and the service restarted.`,
    },
    uninstall: {
      type: "boolean",
      help: `stop and disable the service, remove what install wrote (recorded in
<stateDir>/install-manifest.json). The bot container, its data and the
logs stay. With --dry-run: only print. Refused (exit 1, nothing changed)
while an update is in progress or unfinished (<stateDir>/journal.json).`,
    },
    "cron-schedule": {
      type: "string",
      value: "SPEC",
      help: "when cron runs 'health' (default \"*/5 * * * *\")",
    },
    metrics: {
      type: "boolean",
      help: `set metricsFile to ${DEFAULT_METRICS_FILE}
(node_exporter's textfile folder; --metrics-file FILE names another)`,
    },
  },
  exitCodes: {
    0: "installed, uninstalled, or nothing to change",
    1: "a step failed, the service did not start, or an unfinished update refuses --uninstall",
    2: "bad usage (or --apply/--uninstall without root)",
    3: "configuration error",
  },
  footer: `
Settings given as config flags (or environment variables) are saved in the config file
(--config, default ${DEFAULT_CONFIG_FILE}), which the service and cron read.`,
  async run({ values }, ctx) {
    if (values["dry-run"] && values.apply) {
      throw new UsageError("--dry-run and --apply exclude each other", { object: "install" });
    }
    const schedule = values["cron-schedule"] as string | undefined;
    if (schedule !== undefined && !isCronSchedule(schedule)) {
      throw new UsageError(`not a cron schedule: '${schedule}'`, {
        object: "--cron-schedule",
        hint: 'five fields, e.g. "*/5 * * * *"',
      });
    }
    const { flags, configFile: configFlag } = configFlags(values);
    if (values.metrics && flags.metricsFile === undefined) flags.metricsFile = DEFAULT_METRICS_FILE;
    const configFile = resolve(configFlag ?? ctx.env.HYPERBOT_OPS_CONFIG ?? DEFAULT_CONFIG_FILE);
    const existingText = ctx.readTextFile(configFile);
    // The config file may not exist yet: install is what creates it.
    const config = loadConfig({
      flags,
      configFile,
      env: ctx.env,
      readTextFile: (path) => path === configFile ? existingText ?? "{}" : ctx.readTextFile(path),
      realPath: ctx.realPath,
    });
    // Before anything is written (setupLogging creates logDir).
    refusePrivateTmpPaths(config, configFile, ctx.realPath);
    await setupLogging({ logDir: config.logDir, files: [], stderrLevel: "warning" });

    const saved: ConfigInput = existingText === null
      ? {}
      : parseConfigFile(existingText, configFile);
    for (
      const [key, spec] of Object.entries(CONFIG_KEYS) as [
        ConfigKey,
        (typeof CONFIG_KEYS)[ConfigKey],
      ][]
    ) {
      const given = flags[key] !== undefined || (ctx.env[spec.env] ?? "") !== "";
      if (given) saved[key] = config[key];
    }
    const cronFile = cronFileFor(config.service);
    const desired = desiredInstall({
      config,
      configFile,
      savedSettings: saved,
      selfCommand: ctx.selfCommand,
      denoDir: denoDirOf(ctx.env),
      cronSchedule: schedule,
      cronFile,
    });

    if (!values["dry-run"] && !values.apply && !values.uninstall) {
      const out: string[] = [];
      for (const file of desired.files.filter((f) => f.role === "unit" || f.role === "cron")) {
        out.push(`# ${file.path}`, file.content);
      }
      out.push(
        "# Nothing was changed. 'hyperbot-ops install --dry-run' shows what --apply would do.",
      );
      ctx.stdout(out.join("\n"));
      return 0;
    }

    const host = ctx.host(config);
    const deps: InstallDeps = {
      files: new HostInstallFiles(),
      services: host.services(),
      cron: host.cron(dirname(cronFile), basename(cronFile)),
      logger: loggerFor("install"),
    };
    const dryRun = Boolean(values["dry-run"]);
    if (!dryRun && !host.isRoot()) {
      throw new UsageError("install --apply and --uninstall need root", {
        object: "install",
        hint: "run it with sudo",
      });
    }
    const current = await readCurrentInstall(deps, desired, { tolerateNoSystemd: dryRun });
    const actions = values.uninstall
      ? planUninstall(current, desired)
      : planInstall(current, desired);
    // Uninstalling under an unfinished update would take away what puts the bot back.
    if (values.uninstall && current.journal && actions.length > 0) {
      const loaded = current.service.loadState !== "not-found" && current.service.loadState !== "";
      throw unfinishedUpdate({
        path: desired.journalPath,
        unit: current.manifest?.unit ?? desired.unit,
        unitLoaded: loaded,
        configFile,
      });
    }

    if (actions.length === 0) {
      ctx.stdout(
        values.uninstall
          ? "nothing to change: hyperbot-ops is not installed"
          : `nothing to change: ${desired.unit} and the cron entry are installed and up to date`,
      );
      return 0;
    }
    if (dryRun) {
      ctx.stdout(
        [
          `would ${values.uninstall ? "uninstall" : "install"}:`,
          ...actions.map((a) => `  ${describeAction(a)}`),
        ]
          .join("\n"),
      );
      return 0;
    }
    const done = await applyActions(actions, deps);
    ctx.stdout(
      [values.uninstall ? "uninstalled:" : "installed:", ...done.map((d) => `  ${d}`)].join("\n"),
    );
    if (values.uninstall) return 0;

    // enable --now returns once the start job is queued: see that the watcher really runs.
    const deadline = Date.now() + 5_000;
    for (;;) {
      const s = await deps.services.status(desired.unit);
      if (s.activeState === "active" && s.mainPid > 0) {
        ctx.stdout(`${desired.unit} is active (pid ${s.mainPid}), ${s.unitFileState} at boot`);
        return 0;
      }
      if (Date.now() > deadline || s.activeState === "failed") {
        ctx.stdout(`${desired.unit} is ${s.activeState} (${s.subState})`);
        throw new InstallError(`${desired.unit} did not start`, {
          object: desired.unit,
          hint: `see 'journalctl -u ${desired.unit}'`,
        });
      }
      await systemClock.sleep(250);
    }
  },
});

/** Where Deno keeps its cache for this user, for the launcher. */
function denoDirOf(env: Record<string, string | undefined>): string | null {
  if (env.DENO_DIR) return isAbsolute(env.DENO_DIR) ? env.DENO_DIR : resolve(env.DENO_DIR);
  if (env.XDG_CACHE_HOME) return `${env.XDG_CACHE_HOME}/deno`;
  if (env.HOME) return `${env.HOME}/.cache/deno`;
  return null;
}
