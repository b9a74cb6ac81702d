/**
 * Whether a freshly started container proves healthy: with a Docker HEALTHCHECK it must
 * become `healthy` within healthTimeoutSeconds (and have run for stableSeconds, so one lucky
 * check is not enough); without one it must stay running, with no restart, for stableSeconds.
 * Unhealthy, exited or restarting at any look is a failure at once.
 */

import type { ContainerInfo, Containers } from "../docker.ts";
import type { Config } from "../config.ts";
import type { Clock } from "../state.ts";

/** A failure carries the exit code the container died with, when it died (exited, restarting). */
export type Verdict =
  | { ok: true; detail: string }
  | { ok: false; reason: string; exitCode?: number };

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
  baselineRestarts = 0,
): Verdict | null {
  if (!info) return { ok: false, reason: "the container disappeared" };
  if (info.restartCount > baselineRestarts || info.restarting) {
    return {
      ok: false,
      reason:
        `the container is restarting (restarts: ${info.restartCount}, exit code ${info.exitCode})`,
      exitCode: info.exitCode,
    };
  }
  if (!info.running) {
    return {
      ok: false,
      reason: `the container exited with code ${info.exitCode}`,
      exitCode: info.exitCode,
    };
  }
  if (info.health !== null) {
    if (info.health === "unhealthy") return { ok: false, reason: "the container is unhealthy" };
    if (info.health === "healthy" && elapsedMs >= options.stableSeconds * 1000) {
      return { ok: true, detail: `healthy, and running for ${options.stableSeconds}s` };
    }
    if (info.health !== "healthy" && elapsedMs >= options.healthTimeoutSeconds * 1000) {
      return {
        ok: false,
        reason: `the container did not become healthy within ${options.healthTimeoutSeconds}s`,
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
  let baseline: number | undefined;
  while (true) {
    const elapsed = clock.now().getTime() - start;
    const info = await docker.inspectContainer(id);
    baseline ??= info?.restarting ? 0 : info?.restartCount ?? 0;
    const verdict = judge(info, elapsed, options, baseline);
    if (verdict) return verdict;
    await clock.sleep(pollMs);
  }
}

/** The verification the configuration asks for. */
export function verifyOptions(
  config: Pick<Config, "healthTimeoutSeconds" | "stableSeconds">,
): VerifyOptions {
  return {
    healthTimeoutSeconds: config.healthTimeoutSeconds,
    stableSeconds: config.stableSeconds,
  };
}
