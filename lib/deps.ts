/**
 * The real dependencies, built once in a command from the configuration and handed down.
 * Logic never reaches for Deno.* itself; this is where the adapters are chosen.
 */

import type { Config } from "./config.ts";
import { socketPath } from "./config.ts";
import { DockerConfigCredentialStore } from "./adapters/credentials.ts";
import { SocketDockerEngine } from "./adapters/docker_engine.ts";
import {
  FileJournalStore,
  FileLastUpdateStore,
  FileStatusStore,
  FlockUpdateLock,
} from "./adapters/files.ts";
import type { Logger } from "./log.ts";
import type { StepName } from "./update/report.ts";
import { systemClock } from "./state.ts";
import type { UpdateDeps } from "./update/run.ts";

/** The environment variable that kills the process with SIGKILL just before a named step (tests only). */
export const CRASH_AT_ENV = "HYPERBOT_OPS_TEST_CRASH_AT";

export function createRealDeps(
  config: Config,
  logger: Logger,
  env: Record<string, string | undefined>,
): UpdateDeps & { close(): void } {
  const docker = new SocketDockerEngine({ socketPath: socketPath(config.dockerHost) });
  return {
    docker,
    credentials: new DockerConfigCredentialStore({ env }),
    clock: systemClock,
    logger,
    lock: new FlockUpdateLock(config.stateDir),
    journal: new FileJournalStore(config.stateDir),
    status: new FileStatusStore(config.dataDir),
    lastUpdate: new FileLastUpdateStore(config.stateDir),
    pid: Deno.pid,
    beforeStep: crashHookFromEnv(env),
    close: () => docker.close(),
  };
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
