/**
 * Whether a freshly started container proves healthy: with a Docker HEALTHCHECK it must
 * become `healthy` within healthTimeoutSeconds; without one it must stay running, with no
 * restart, for stableSeconds.
 */

import type { ContainerInfo, Containers } from "./docker.ts";
import type { Clock } from "./state.ts";

export type Verdict = { ok: true; detail: string } | { ok: false; reason: string };

export interface VerifyOptions {
  healthTimeoutSeconds: number;
  stableSeconds: number;
  /** How often to look, in ms. */
  pollMs?: number;
}

/** Judges one observation. Returns null while the answer is not known yet. */
export function judge(
  info: ContainerInfo | null,
  elapsedMs: number,
  options: VerifyOptions,
): Verdict | null {
  if (!info) return { ok: false, reason: "the new container disappeared" };
  if (info.restartCount > 0 || info.restarting) {
    return {
      ok: false,
      reason:
        `the new container is restarting (restarts: ${info.restartCount}, exit code ${info.exitCode})`,
    };
  }
  if (!info.running) {
    return { ok: false, reason: `the new container exited with code ${info.exitCode}` };
  }
  if (info.health !== null) {
    if (info.health === "healthy") return { ok: true, detail: "healthy" };
    if (info.health === "unhealthy") return { ok: false, reason: "the new container is unhealthy" };
    if (elapsedMs >= options.healthTimeoutSeconds * 1000) {
      return {
        ok: false,
        reason: `the new container did not become healthy within ${options.healthTimeoutSeconds}s`,
      };
    }
    return null;
  }
  if (elapsedMs >= options.stableSeconds * 1000) {
    return { ok: true, detail: `running for ${options.stableSeconds}s without a restart` };
  }
  return null;
}

/** Watches the container until a verdict. */
export async function verifyContainer(
  docker: Pick<Containers, "inspectContainer">,
  clock: Clock,
  id: string,
  options: VerifyOptions,
): Promise<Verdict> {
  const pollMs = options.pollMs ?? 250;
  const start = clock.now().getTime();
  while (true) {
    const elapsed = clock.now().getTime() - start;
    const verdict = judge(await docker.inspectContainer(id), elapsed, options);
    if (verdict) return verdict;
    await clock.sleep(pollMs);
  }
}
