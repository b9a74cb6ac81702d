/**
 * One bot on the fake engine, ready to be updated: the world the update's promise tests share.
 * The fake engine and the update share one FakeClock, so the times the fake stamps (Created,
 * StartedAt) are the update's times. `killAt` abandons an update at a step, as kill -9 would.
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config.ts";
import type { ContainerConfig } from "../../lib/docker.ts";
import { MemoryLogger } from "../../lib/log.ts";
import { runUpdate, type UpdateDeps } from "../../lib/update/run.ts";
import { FakeDockerEngine, type FakeDockerOptions } from "../fakes/docker.ts";
import {
  FakeClock,
  FakeFailedImages,
  FakeJournal,
  FakeLastUpdate,
  FakeLock,
  FakeStatus,
} from "../fakes/state.ts";

export const REPO = "registry.example.com/org/bot";
export const V1 = `${REPO}:1`;
export const V2 = `${REPO}:2`;
export const BROKEN = `${REPO}:broken`;
export const HEALTHCHECK = { Test: ["CMD", "/bin/check"], Interval: 1e9 };
export const V2_HEALTHY: ContainerConfig = { Cmd: ["/bin/bot"], Healthcheck: HEALTHCHECK };

/** The configuration for the bot "bot": stableSeconds 10, healthTimeoutSeconds 60. */
export function config(overrides: Record<string, unknown> = {}) {
  return loadConfig({
    env: {},
    readTextFile: () => null,
    flags: { container: "bot", stableSeconds: 10, healthTimeoutSeconds: 60, ...overrides },
  });
}

/**
 * The bot "bot" runs V1 (stop signal SIGINT, stop timeout 42 s, restart policy
 * unless-stopped); V2 and BROKEN are in the registry.
 */
export async function world(
  options: FakeDockerOptions = {},
  v2: ContainerConfig = { Cmd: ["/bin/bot"] },
) {
  const clock = new FakeClock();
  const docker = new FakeDockerEngine({ now: () => clock.now(), ...options });
  docker.addImage(V1, { Cmd: ["/bin/bot"] });
  docker.publishImage(V1, { Cmd: ["/bin/bot"] });
  docker.publishImage(V2, v2);
  docker.publishImage(BROKEN, { Cmd: ["/bin/broken"] });
  const oldId = await docker.runContainer("bot", {
    Image: V1,
    StopSignal: "SIGINT",
    StopTimeout: 42,
    HostConfig: { RestartPolicy: { Name: "unless-stopped" } },
  });
  const lock = new FakeLock();
  const journal = new FakeJournal();
  const status = new FakeStatus();
  const lastUpdate = new FakeLastUpdate();
  const failedImages = new FakeFailedImages();
  const logger = new MemoryLogger();
  const deps: UpdateDeps = {
    docker,
    credentials: { lookup: () => Promise.resolve(null) },
    clock,
    logger,
    lock,
    journal,
    status,
    lastUpdate,
    failedImages,
    pid: 4242,
  };
  return { docker, deps, clock, lock, journal, status, lastUpdate, failedImages, logger, oldId };
}

export type World = Awaited<ReturnType<typeof world>>;

/** Lets the update run (macrotask turns, no wall time) until `until` holds; fails if it never does. */
export async function settle(until: () => boolean) {
  for (let i = 0; i < 500 && !until(); i++) await new Promise((r) => setTimeout(r, 0));
  assert.ok(until(), "the update reached the point the test waits for");
}

/**
 * An update that dies when it reaches `step` (the promise is abandoned, as with kill -9).
 * Returns the deps of the restarted process (a fresh lock; the journal the dead one left).
 */
export async function killAt(w: World, image: string, step: string): Promise<UpdateDeps> {
  let reached = false;
  const deps: UpdateDeps = {
    ...w.deps,
    beforeStep: (s) => {
      if (s !== step) return;
      reached = true;
      return new Promise<void>(() => {});
    },
  };
  void runUpdate(deps, config(), { image, source: "trigger" });
  await settle(() => reached);
  return { ...w.deps, lock: new FakeLock() };
}
