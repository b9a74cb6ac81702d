/**
 * systemd, through `systemctl`: the state of the monitor service and the few changes
 * install and health make to it. `FakeServiceManager` (test/fakes/systemctl.ts) holds the
 * same state in memory.
 */

import { type ErrorDetails, OpsError } from "../errors.ts";
import { type CommandRunner, runCommand } from "./run_command.ts";

/** What health, status and install need to know about a unit, from one `systemctl show`. */
export interface ServiceStatus {
  unit: string;
  /** `loaded`, `not-found`, `bad-setting`, `masked`… */
  loadState: string;
  /** `active`, `inactive`, `failed`, `activating`, `deactivating`, `reloading`. */
  activeState: string;
  /** `running`, `dead`, `failed`, `auto-restart`, `start`… */
  subState: string;
  /** `enabled`, `disabled`, `static`, `masked`…; empty when the unit file is absent. */
  unitFileState: string;
  /** When the unit last entered the active state, or null when it never did. */
  activeSince: Date | null;
  /** PID of the main process, 0 when none. */
  mainPid: number;
  /** How often systemd restarted it (Restart=). */
  restarts: number;
  /** `success`, `exit-code`, `signal`, `timeout`… of the last run. */
  result: string;
  /**
   * What the loaded unit (with its drop-ins) lets the service reach and write; absent when
   * systemd did not say (a unit that is not loaded, or a fake that does not tell).
   */
  access?: UnitAccess;
}

/** The sandbox settings of a loaded unit, as `systemctl show` reports them. */
export interface UnitAccess {
  privateNetwork: boolean;
  /** `AF_UNIX AF_INET …` (allowed), `~AF_PACKET …` (all but these), `~` or empty (all). */
  restrictAddressFamilies: string;
  /** Denied prefixes, `any` shown as `::/0 0.0.0.0/0`. */
  ipAddressDeny: string[];
  ipAddressAllow: string[];
  /** `strict`, `full`, `yes`, `no`. */
  protectSystem: string;
  /** Without the `-` (ignore if missing) or `+` prefix. */
  readWritePaths: string[];
}

export interface ServiceManager {
  /** The unit's state. A unit that does not exist has loadState `not-found`. Throws ServiceError when systemd cannot be asked. */
  status(unit: string): Promise<ServiceStatus>;
  /** `systemctl daemon-reload`. Throws ServiceError. */
  daemonReload(): Promise<void>;
  /** `systemctl enable --now`. Throws ServiceError. */
  enableNow(unit: string): Promise<void>;
  /** `systemctl disable --now` (stops it too). No error when the unit is absent. */
  disableNow(unit: string): Promise<void>;
  /** `systemctl restart`: starts a stopped or failed unit too. Throws ServiceError. */
  restart(unit: string): Promise<void>;
  /** `systemctl reset-failed`: clears the failed state and the start-rate counter. Never throws. */
  resetFailed(unit: string): Promise<void>;
  /** `systemctl kill --signal=…` to every process of the unit. Throws ServiceError. */
  kill(unit: string, signal: string): Promise<void>;
}

/** systemctl failed, or systemd is not running. */
export class ServiceError extends OpsError {
  readonly exitCode = 1;
  readonly stderr: string;
  constructor(message: string, details: ErrorDetails & { stderr?: string } = {}) {
    super(message, details);
    this.stderr = details.stderr ?? "";
  }
}

const SHOW_PROPERTIES = [
  "LoadState",
  "ActiveState",
  "SubState",
  "UnitFileState",
  "ActiveEnterTimestamp",
  "MainPID",
  "NRestarts",
  "Result",
  "PrivateNetwork",
  "RestrictAddressFamilies",
  "IPAddressDeny",
  "IPAddressAllow",
  "ProtectSystem",
  "ReadWritePaths",
];

/**
 * How long a start, stop or restart may take at the least. Stopping the watcher lets an update in
 * progress finish, which systemd bounds by the unit's TimeoutStopSec (about 8 minutes with the
 * defaults); giving up sooner would report a failure while systemd's job goes on. Callers that
 * know the unit's TimeoutStopSec pass a longer wait when it needs one. The limit only guards
 * against a systemd that never answers.
 */
export const MIN_JOB_WAIT_MS = 30 * 60_000;

/** The real systemd, through the `systemctl` program. */
export class SystemctlServiceManager implements ServiceManager {
  private readonly jobWaitMs: number;

  /** `stopTimeoutSeconds`: the unit's TimeoutStopSec, when known (the job wait covers it). */
  constructor(
    private readonly systemctl = "systemctl",
    private readonly runner: CommandRunner = runCommand,
    stopTimeoutSeconds = 0,
  ) {
    this.jobWaitMs = Math.max(MIN_JOB_WAIT_MS, (stopTimeoutSeconds + 120) * 1000);
  }

  async status(unit: string): Promise<ServiceStatus> {
    const out = await this.run(["show", unit, `--property=${SHOW_PROPERTIES.join(",")}`]);
    return parseShow(unit, out);
  }

  async daemonReload(): Promise<void> {
    await this.run(["daemon-reload"]);
  }

  async enableNow(unit: string): Promise<void> {
    await this.run(["enable", "--now", unit], this.jobWaitMs);
  }

  async disableNow(unit: string): Promise<void> {
    const status = await this.status(unit);
    if (status.loadState === "not-found") return;
    await this.run(["disable", "--now", unit], this.jobWaitMs);
  }

  async restart(unit: string): Promise<void> {
    await this.run(["restart", unit], this.jobWaitMs);
  }

  async resetFailed(unit: string): Promise<void> {
    await this.run(["reset-failed", unit]).catch(() => {});
  }

  async kill(unit: string, signal: string): Promise<void> {
    await this.run(["kill", `--signal=${signal}`, unit]);
  }

  private async run(args: string[], timeoutMs = 90_000): Promise<string> {
    let result;
    try {
      result = await this.runner(this.systemctl, args, {
        timeoutMs,
        // UTC timestamps parse the same on every systemd version.
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
          TZ: "UTC",
          LC_ALL: "C",
          SYSTEMD_PAGER: "",
          SYSTEMD_COLORS: "0",
        },
      });
    } catch (err) {
      throw new ServiceError("cannot run systemctl", {
        cause: err,
        hint: "is this a systemd host?",
      });
    }
    if (result.code !== 0) {
      const stderr = result.stderr.trim();
      const shown = args.filter((a) => !a.startsWith("--property=")).join(" ");
      const why = stderr.split("\n")[0] || `exit code ${result.code}`;
      throw new ServiceError(
        `systemctl ${shown} failed: ${why}`,
        { stderr, hint: "is systemd running? see 'journalctl -xe'" },
      );
    }
    return result.stdout;
  }
}

/** Parses `systemctl show --property=…` output (TZ=UTC). */
export function parseShow(unit: string, text: string): ServiceStatus {
  const props: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) props[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return {
    unit,
    loadState: props.LoadState ?? "",
    activeState: props.ActiveState ?? "",
    subState: props.SubState ?? "",
    unitFileState: props.UnitFileState ?? "",
    activeSince: parseSystemdTimestamp(props.ActiveEnterTimestamp ?? ""),
    mainPid: Number(props.MainPID ?? 0) || 0,
    restarts: Number(props.NRestarts ?? 0) || 0,
    result: props.Result ?? "",
    ...(props.LoadState === "loaded" && props.PrivateNetwork !== undefined
      ? { access: parseAccess(props) }
      : {}),
  };
}

function parseAccess(props: Record<string, string>): UnitAccess {
  const words = (text: string | undefined) => (text ?? "").split(/\s+/).filter(Boolean);
  return {
    privateNetwork: props.PrivateNetwork === "yes",
    restrictAddressFamilies: props.RestrictAddressFamilies ?? "",
    ipAddressDeny: words(props.IPAddressDeny),
    ipAddressAllow: words(props.IPAddressAllow),
    protectSystem: props.ProtectSystem ?? "no",
    readWritePaths: words(props.ReadWritePaths).map((p) => p.replace(/^[-+]+/, "")),
  };
}

/** `Mon 2026-01-05 10:00:00 UTC` (or `@1767607200`) -> Date; empty or `n/a` -> null. */
export function parseSystemdTimestamp(text: string): Date | null {
  const unix = /^@(\d+)$/.exec(text);
  if (unix) return new Date(Number(unix[1]) * 1000);
  const m = /(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(\.\d+)? UTC$/.exec(text);
  if (!m) return null;
  const date = new Date(`${m[1]}T${m[2]}${m[3] ?? ""}Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}
