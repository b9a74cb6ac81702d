/**
 * The one place that builds the real dependencies: the Docker engine, systemctl, cron, the
 * files under stateDir and dataDir, the process itself. main.ts hands a command
 * `ctx.host(config)`; the command passes what it needs down to the logic, which never reaches
 * for Deno.* itself. `close()` closes every engine handed out.
 */

import { basename, dirname } from "node:path";
import { type Config, socketPath } from "../config.ts";
import type { Containers } from "../docker.ts";
import { stopTimeoutSeconds } from "../install/plan.ts";
import { cronFileFor } from "../install/cron.ts";
import type { Logger } from "../log.ts";
import { type StatusStore, systemClock } from "../state.ts";
import type { StepName } from "../update/report.ts";
import type { UpdateDeps } from "../update/run.ts";
import { FileHeartbeatStore } from "../watch/heartbeat.ts";
import { OperatorComposeFiles } from "./compose_files.ts";
import { DockerConfigCredentialStore } from "./credentials.ts";
import { CronDirTable } from "./crontab.ts";
import { SocketDockerEngine } from "./docker_engine.ts";
import {
  FileFailedImagesStore,
  FileJournalStore,
  FileLastUpdateStore,
  FileStatusStore,
  FileUpdateRecordStore,
  FlockUpdateLock,
} from "./files.ts";
import { recordingStatus } from "../update/records.ts";
import { FileCounterStore, TextfileMetricsFile } from "./metrics_files.ts";
import { MetricsRecorder } from "../metrics/recorder.ts";
import { metricsSources } from "../metrics/sources.ts";
import { tailLines } from "./process.ts";
import { Notifier } from "../notify/notifier.ts";
import { FetchHttpOut } from "./http_out.ts";
import { FileNotifyStateStore, FileOutboxStore, systemHostName } from "./notify_files.ts";
import { releaseCodePages } from "./memory.ts";
import { runCommand } from "./run_command.ts";
import { SystemctlServiceManager } from "./systemctl.ts";

/** The environment variable that kills the process with SIGKILL just before a named step (tests only). */
export const CRASH_AT_ENV = "HYPERBOT_OPS_TEST_CRASH_AT";

export class Host {
  private readonly engines: SocketDockerEngine[] = [];
  /** This process's id (lock holders, heartbeats). */
  readonly pid: number = Deno.pid;

  constructor(
    readonly config: Config,
    private readonly env: Record<string, string | undefined>,
    /** hyperbot-ops' version (build_info in the metrics). */
    private readonly version = "unknown",
  ) {}

  /** A Docker engine on the configured socket; `requestTimeoutMs` bounds ordinary requests. */
  docker(options: { requestTimeoutMs?: number } = {}): SocketDockerEngine {
    const engine = new SocketDockerEngine({
      socketPath: socketPath(this.config.dockerHost),
      requestTimeoutMs: options.requestTimeoutMs,
    });
    this.engines.push(engine);
    return engine;
  }

  /** systemd through systemctl; its job wait covers the unit's stop timeout. */
  services(): SystemctlServiceManager {
    return new SystemctlServiceManager("systemctl", runCommand, stopTimeoutSeconds(this.config));
  }

  /** This service's file in /etc/cron.d (cronFileFor), or another folder and name. */
  cron(dir?: string, name?: string): CronDirTable {
    const own = cronFileFor(this.config.service);
    return new CronDirTable(dir ?? dirname(own), name ?? basename(own));
  }

  heartbeat(): FileHeartbeatStore {
    return new FileHeartbeatStore(this.config.stateDir);
  }

  /**
   * The status file and history in dataDir (the bot's page); every ended update and rejection
   * written there is recorded in root's records in stateDir too.
   */
  statusFile(): StatusStore {
    return recordingStatus(new FileStatusStore(this.config.dataDir), this.updateRecords());
  }

  /** Root's record of the last ended update and the last rejection: what status trusts. */
  updateRecords(): FileUpdateRecordStore {
    return new FileUpdateRecordStore(this.config.stateDir);
  }

  /** `<stateDir>/journal.json`: the update in progress, or one a killed process left. */
  journal(): FileJournalStore {
    return new FileJournalStore(this.config.stateDir);
  }

  /** The update lock (its holder: the update running now). */
  updateLock(): FlockUpdateLock {
    return new FlockUpdateLock(this.config.stateDir);
  }

  /** What an update needs: engine, credentials, lock, journal, status file, last-update record. */
  update(logger: Logger): UpdateDeps {
    const config = this.config;
    return {
      docker: this.docker(),
      credentials: new DockerConfigCredentialStore({ env: this.env }),
      clock: systemClock,
      logger,
      lock: new FlockUpdateLock(config.stateDir),
      journal: new FileJournalStore(config.stateDir),
      status: this.statusFile(),
      lastUpdate: new FileLastUpdateStore(config.stateDir),
      failedImages: new FileFailedImagesStore(config.stateDir),
      pid: this.pid,
      composeFiles: this.composeFiles(),
      beforeStep: crashHookFromEnv(this.env),
    };
  }

  /**
   * The metrics: counters in stateDir, the textfile when metricsFile is set. Flush it before
   * the process ends (`await metrics.flush()`). `docker`: an engine the command has already
   * (one HTTP client less in a long-running watcher).
   */
  metrics(
    logger: Logger,
    docker: Pick<Containers, "inspectContainer"> = this.docker({ requestTimeoutMs: 10_000 }),
  ): MetricsRecorder {
    const cfg = this.config;
    return new MetricsRecorder({
      store: new FileCounterStore(cfg.stateDir),
      sources: metricsSources({
        docker,
        heartbeat: this.heartbeat(),
        journal: new FileJournalStore(cfg.stateDir),
        lock: new FlockUpdateLock(cfg.stateDir),
      }, cfg.container),
      file: cfg.metricsFile ? new TextfileMetricsFile(cfg.metricsFile) : null,
      clock: systemClock,
      logger,
      version: this.version,
    });
  }

  /**
   * Notifications: the outbox and state in `<stateDir>/notify/`, HTTP out through fetch (which
   * honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY), this server's host name.
   */
  notifier(logger: Logger): Notifier {
    const cfg = this.config;
    return new Notifier(
      {
        http: new FetchHttpOut(),
        outbox: new FileOutboxStore(cfg.stateDir),
        state: new FileNotifyStateStore(cfg.stateDir),
        clock: systemClock,
        logger,
        host: systemHostName(),
      },
      {
        channels: cfg.notify,
        language: cfg.notifyLanguage,
        outcomes: cfg.notifyOutcomes,
        pingUrl: cfg.pingUrl,
        container: cfg.container,
      },
    );
  }

  /** The operator's compose files, for pinning and for status (never inside dataDir). */
  composeFiles(): OperatorComposeFiles {
    return new OperatorComposeFiles({ dataDir: this.config.dataDir });
  }

  /** The last `n` lines of a log file; null when absent. */
  tail(path: string, n: number): Promise<string[] | null> {
    return tailLines(path, n);
  }

  /**
   * Drops the clean code pages start-up ran once from this process's resident set (see
   * lib/adapters/memory.ts); the idle watcher calls it. Returns the KiB released.
   */
  releaseCodePages(): number {
    return releaseCodePages();
  }

  /** Whether this process runs as root. */
  isRoot(): boolean {
    return Deno.uid() === 0;
  }

  close(): void {
    for (const engine of this.engines.splice(0)) engine.close();
  }
}

/**
 * Test hook: with HYPERBOT_OPS_TEST_CRASH_AT=<step>, the process kills itself with SIGKILL
 * right after the journal records that step, the way an OOM kill or power loss would.
 */
export function crashHookFromEnv(
  env: Record<string, string | undefined>,
): ((step: StepName) => void) | undefined {
  const at = env[CRASH_AT_ENV];
  if (!at) return undefined;
  return (step) => {
    if (step === at) Deno.kill(Deno.pid, "SIGKILL");
  };
}
