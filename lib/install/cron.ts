/**
 * The cron entry that runs `hyperbot-ops health`, and the launcher that stands for the
 * executable when hyperbot-ops runs from source. Pure: no I/O.
 */

import { CRON_DIR, healthCronLines } from "../adapters/crontab.ts";
import { DEFAULT_CONFIG_FILE, DEFAULT_SERVICE } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { printable } from "../printable.ts";

export const DEFAULT_CRON_SCHEDULE = "*/5 * * * *";
export const CRON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The cron file of one service: `/etc/cron.d/hyperbot-ops` for the default service (as on
 * servers installed before), `/etc/cron.d/hyperbot-ops-<service>` for any other, so a second
 * bot's install never replaces the first one's entry. cron skips names with a dot or other
 * characters than letters, digits, '-' and '_': those become '_'.
 */
export function cronFileFor(service: string): string {
  if (service === DEFAULT_SERVICE) return `${CRON_DIR}/hyperbot-ops`;
  return `${CRON_DIR}/hyperbot-ops-${service.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/**
 * The active lines of a cron file that run `health` for this config file (absolute), as
 * renderCron writes them: `--config <file>` quoted the same way, ending the line or followed by
 * a space. A line without `--config` reads the default config file.
 */
export function healthCronLinesFor(content: string | null, configFile: string): string[] {
  let arg: string;
  try {
    arg = ` --config ${quoteCron(configFile)}`;
  } catch {
    return [];
  }
  return healthCronLines(content).filter((line) => {
    if (!/\s--config(\s|=)/.test(line)) return configFile === DEFAULT_CONFIG_FILE;
    const at = line.indexOf(arg);
    return at >= 0 && (at + arg.length === line.length || /\s/.test(line[at + arg.length]));
  });
}

export interface CronOptions {
  /** Absolute path of the executable: the compiled binary or the launcher. */
  executable: string;
  configFile: string;
  /** Five cron fields; default every 5 minutes. */
  schedule?: string;
}

/**
 * The content of the cron file (cronFileFor). `--quiet` keeps a healthy run silent, so cron
 * mails only when health repaired or could not repair something; every run is logged to
 * health-check.log anyway.
 */
export function renderCron(options: CronOptions): string {
  const schedule = options.schedule ?? DEFAULT_CRON_SCHEDULE;
  if (!isCronSchedule(schedule)) throw new Error(`not a cron schedule: '${schedule}'`);
  const command = [options.executable, "health", "--quiet", "--config", options.configFile]
    .map(quoteCron).join(" ");
  return `# Installed by 'hyperbot-ops install': checks the update monitor and restarts it when it
# is stopped, failed or hung. Remove with 'hyperbot-ops install --uninstall'.
SHELL=/bin/sh
PATH=${CRON_PATH}
${schedule} root ${command}
`;
}

/** Five fields of digits, `*`, `/`, `,` and `-` (no @reboot and the like). */
export function isCronSchedule(text: string): boolean {
  const fields = text.trim().split(/\s+/);
  return fields.length === 5 && fields.every((f) => /^[\d*/,-]+$/.test(f));
}

/**
 * Quotes a word for /bin/sh; `%` is escaped because cron turns it into a newline. A control
 * character is refused (ConfigError): cron has no way to continue a line, so a newline would
 * start an entry of its own.
 */
export function quoteCron(word: string): string {
  if (printable(word, Infinity) !== word) {
    throw new ConfigError("a path for the cron entry holds a control character", {
      object: printable(word, 200),
      hint: "use paths without newlines or other control characters",
    });
  }
  return quoteShell(word).replaceAll("%", "\\%");
}

/**
 * The launcher script that stands for the executable when hyperbot-ops runs under
 * `deno run`: null for the compiled binary (it is its own executable).
 * `selfCommand` is `[deno, "run", ...flags, "/abs/main.ts"]`.
 */
export function renderLauncher(selfCommand: string[], denoDir: string | null): string | null {
  if (selfCommand.length === 1) return null;
  const [deno, run, ...rest] = selfCommand;
  // The service sees the source folder read-only: never try to write deno.lock there.
  const args = [deno, run, "--no-lock", ...rest.filter((a) => a !== "--no-lock")];
  // The value is one single-quoted sh word: `$()`, backquotes and `"` in it stay text.
  const env = denoDir
    ? `if [ -z "\${DENO_DIR:-}" ]; then DENO_DIR=${quoteShell(denoDir)}; fi\nexport DENO_DIR\n`
    : "";
  return `#!/bin/sh
# Installed by 'hyperbot-ops install': runs hyperbot-ops from source with Deno.
${env}export DENO_NO_UPDATE_CHECK=1
exec ${args.map(quoteShell).join(" ")} "$@"
`;
}

/** Quotes a word for /bin/sh: plain words as they are, anything else in single quotes. */
export function quoteShell(word: string): string {
  return /^[A-Za-z0-9_@+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
