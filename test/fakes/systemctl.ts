/** An in-memory systemd for one or more units: state, a `calls` log, failures by named option. */

import {
  ServiceError,
  type ServiceManager,
  type ServiceStatus,
  type UnitAccess,
} from "../../lib/adapters/systemctl.ts";
import type { Clock } from "../../lib/state.ts";

export interface FakeUnit {
  loaded: boolean;
  enabled: boolean;
  activeState: "active" | "inactive" | "failed" | "activating" | "deactivating";
  subState: string;
  activeSince: Date | null;
  mainPid: number;
  restarts: number;
  /** The sandbox settings `systemctl show` would report; absent: not told. */
  access?: UnitAccess;
}

export interface FakeServiceOptions {
  /** systemctl cannot reach systemd (not a systemd host). */
  unreachable?: boolean;
  /** `restart` and `enableNow` fail with an error. */
  startFails?: boolean;
  /**
   * The unit starts, then dies: `true`, at the second status after the start; a number, that
   * many ms (on the clock) after the start.
   */
  crashesAfterStart?: boolean | number;
  /** Called after a start, e.g. to write the new watcher's heartbeat. */
  onStart?: (unit: string, pid: number) => void;
}

export class FakeServiceManager implements ServiceManager {
  readonly units = new Map<string, FakeUnit>();
  readonly calls: string[] = [];
  reloads = 0;
  private nextPid = 1000;
  private statusAfterStart = 0;

  constructor(private readonly clock: Clock, public options: FakeServiceOptions = {}) {}

  /** Adds a unit as install would leave it: loaded, enabled, active. */
  addUnit(unit: string, overrides: Partial<FakeUnit> = {}): FakeUnit {
    const u: FakeUnit = {
      loaded: true,
      enabled: true,
      activeState: "active",
      subState: "running",
      activeSince: this.clock.now(),
      mainPid: this.nextPid++,
      restarts: 0,
      ...overrides,
    };
    this.units.set(unit, u);
    return u;
  }

  status(unit: string): Promise<ServiceStatus> {
    this.calls.push(`status ${unit}`);
    if (this.options.unreachable) return Promise.reject(this.unreachable());
    const u = this.units.get(unit);
    const diesAfterMs = this.options.crashesAfterStart;
    if (
      u && typeof diesAfterMs === "number" && u.activeState === "active" && u.activeSince &&
      this.clock.now().getTime() - u.activeSince.getTime() >= diesAfterMs
    ) {
      u.activeState = "activating";
      u.subState = "auto-restart";
      u.mainPid = 0;
    }
    if (
      u && this.options.crashesAfterStart === true && u.activeState === "active" &&
      this.statusAfterStart > 0
    ) {
      if (--this.statusAfterStart === 0) {
        u.activeState = "activating";
        u.subState = "auto-restart";
        u.mainPid = 0;
      }
    }
    if (!u || !u.loaded) {
      return Promise.resolve({
        unit,
        loadState: "not-found",
        activeState: "inactive",
        subState: "dead",
        unitFileState: "",
        activeSince: null,
        mainPid: 0,
        restarts: 0,
        result: "success",
      });
    }
    return Promise.resolve({
      unit,
      loadState: "loaded",
      activeState: u.activeState,
      subState: u.subState,
      unitFileState: u.enabled ? "enabled" : "disabled",
      activeSince: u.activeSince,
      mainPid: u.mainPid,
      restarts: u.restarts,
      result: u.activeState === "failed" ? "exit-code" : "success",
      ...(u.access ? { access: u.access } : {}),
    });
  }

  daemonReload(): Promise<void> {
    this.calls.push("daemon-reload");
    if (this.options.unreachable) return Promise.reject(this.unreachable());
    this.reloads++;
    return Promise.resolve();
  }

  enableNow(unit: string): Promise<void> {
    this.calls.push(`enable-now ${unit}`);
    const u = this.units.get(unit) ??
      this.addUnit(unit, { activeState: "inactive", enabled: false });
    if (this.options.startFails) return Promise.reject(new ServiceError(`Job for ${unit} failed`));
    u.enabled = true;
    if (u.activeState !== "active") this.start(unit, u);
    return Promise.resolve();
  }

  disableNow(unit: string): Promise<void> {
    this.calls.push(`disable-now ${unit}`);
    const u = this.units.get(unit);
    if (u) {
      u.enabled = false;
      u.activeState = "inactive";
      u.subState = "dead";
      u.mainPid = 0;
    }
    return Promise.resolve();
  }

  restart(unit: string): Promise<void> {
    this.calls.push(`restart ${unit}`);
    if (this.options.unreachable) return Promise.reject(this.unreachable());
    const u = this.units.get(unit);
    if (!u) return Promise.reject(new ServiceError(`Unit ${unit} not found.`));
    if (this.options.startFails) return Promise.reject(new ServiceError(`Job for ${unit} failed`));
    this.start(unit, u);
    return Promise.resolve();
  }

  resetFailed(unit: string): Promise<void> {
    this.calls.push(`reset-failed ${unit}`);
    const u = this.units.get(unit);
    if (u?.activeState === "failed") {
      u.activeState = "inactive";
      u.subState = "dead";
    }
    return Promise.resolve();
  }

  kill(unit: string, signal: string): Promise<void> {
    this.calls.push(`kill ${signal} ${unit}`);
    const u = this.units.get(unit);
    if (u && signal === "SIGKILL") {
      u.activeState = "activating";
      u.subState = "auto-restart";
      u.mainPid = 0;
    }
    return Promise.resolve();
  }

  private start(unit: string, u: FakeUnit) {
    u.activeState = "active";
    u.subState = "running";
    u.activeSince = this.clock.now();
    u.mainPid = this.nextPid++;
    if (this.options.crashesAfterStart === true) this.statusAfterStart = 2;
    this.options.onStart?.(unit, u.mainPid);
  }

  private unreachable() {
    return new ServiceError(
      "systemctl show failed: System has not been booted with systemd as init system (PID 1). Can't operate.",
    );
  }
}
