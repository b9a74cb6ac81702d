/**
 * The systemd unit of the monitor, rendered from data. Pure: no I/O.
 *
 * Hardening: the watcher runs as root (it needs the Docker socket and writes the bot's
 * shared folder), but with only CAP_DAC_OVERRIDE, CAP_FOWNER and CAP_CHOWN, a read-only view of the
 * system except its own folders, no address family but AF_UNIX (with `notify`: outgoing IPv4/IPv6,
 * no listening), and a system-call allow-list.
 * `systemd-analyze security --offline=true` rates it below 3.0 (test/unit/install_unit_test.ts).
 * docs/operations.md explains each choice.
 */

import { ConfigError } from "../errors.ts";
import { printable } from "../printable.ts";

export const UNIT_DIR = "/etc/systemd/system";

export interface UnitOptions {
  /** Unit name without `.service`. */
  service: string;
  /** Absolute path of the executable: the compiled binary or the launcher. */
  executable: string;
  /** Absolute path of the config file the watcher reads. */
  configFile: string;
  /** Folders the watcher writes: baseDir, dataDir, logDir, stateDir. */
  readWritePaths: string[];
  /** How long systemd waits for a stop, so an update in progress can finish (seconds). */
  timeoutStopSec: number;
  /**
   * The watcher sends notifications (`notify` is configured): it may open IPv4/IPv6 sockets to
   * the chat services (or a proxy). Without it the unit keeps AF_UNIX only and no network.
   */
  network?: boolean;
}

/** The content of `<service>.service`. */
export function renderUnit(options: UnitOptions): string {
  const exec = [options.executable, "watch", "--config", options.configFile];
  const rw = unique(options.readWritePaths).map((p) => `-${quoteSystemdPath(p)}`).join(" ");
  return `# Installed by 'hyperbot-ops install'. Changes here are overwritten by the next install.
[Unit]
Description=HyperBot update monitor (hyperbot-ops watch)
After=docker.service network-online.target
Wants=docker.service
# Never give up restarting: cron's health check is the second line, not the first.
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart=${exec.map(quoteSystemd).join(" ")}
Restart=always
RestartSec=10
# SIGTERM lets an update in progress finish before the watcher exits.
TimeoutStopSec=${Math.ceil(options.timeoutStopSec)}
KillMode=mixed
Environment=NO_COLOR=1
UMask=0027

# Root for the Docker socket. Of root's powers only file-permission overrides are kept, so it can
# replace the trigger and status files in a data folder the bot's own user owns, and CAP_CHOWN,
# so a pinned compose file keeps its owner; ProtectSystem limits where these apply.
CapabilityBoundingSet=CAP_DAC_OVERRIDE CAP_FOWNER CAP_CHOWN
AmbientCapabilities=
NoNewPrivileges=yes
# Read-only system; writable: only the folders below. /root stays readable for docker login credentials.
ProtectSystem=strict
ReadWritePaths=${rw}
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
PrivateIPC=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
${networkLines(options.network ?? false)}RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources @mount @swap @reboot @raw-io @obsolete @debug @cpu-emulation @clock @module
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`;
}

function networkLines(network: boolean): string {
  if (network) {
    return `# The Docker Engine API is a unix socket; notifications ('notify') go out over IPv4/IPv6.
# Outgoing only: no socket of the watcher may bind a port (connect's own port is not a bind).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SocketBindDeny=any
`;
  }
  return `# The Docker Engine API is a unix socket; registries are reached by dockerd, not by us.
RestrictAddressFamilies=AF_UNIX
PrivateNetwork=yes
IPAddressDeny=any
`;
}

/**
 * Quotes one word of a command line (ExecStart=) for a unit file: `%` (specifiers) and `$`
 * (environment variables) escaped, spaces, quotes and backslashes in double quotes. A word with
 * a control character is refused (ConfigError): a newline would end the line and start another
 * setting, such as `ExecStartPre=`.
 */
export function quoteSystemd(word: string): string {
  refuseControls(word);
  const escaped = word.replaceAll("%", "%%").replaceAll("$", "$$$$");
  if (/^[A-Za-z0-9_@%+=:,./$-]+$/.test(escaped)) return escaped;
  return `"${escaped.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/**
 * Quotes a path for a path-list setting (ReadWritePaths=): `%` escaped, but not `$`, since
 * systemd expands no variables there (`$$` would stay two dollars). Refuses control characters.
 */
export function quoteSystemdPath(path: string): string {
  refuseControls(path);
  const escaped = path.replaceAll("%", "%%");
  if (/^[A-Za-z0-9_@%+=:,./$-]+$/.test(escaped)) return escaped;
  return `"${escaped.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

function refuseControls(word: string) {
  if (printable(word, Infinity) !== word) {
    throw new ConfigError("a path or name for the unit file holds a control character", {
      object: printable(word, 200),
      hint: "use paths without newlines or other control characters",
    });
  }
}

function unique(items: string[]): string[] {
  return [...new Set(items)];
}
