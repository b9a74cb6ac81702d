/**
 * The verdict on a freshly started container (lib/update/verify.ts), one rule at a time: each
 * test breaks when one of judge()'s checks is removed or loosened (found by `deno task mutation`:
 * the update tests alone could not tell the checks apart, since a crashed container under a
 * restart policy is both restarting and not running).
 */

import assert from "node:assert/strict";
import type { ContainerInfo } from "../../lib/docker.ts";
import { judge, verifyContainer, type VerifyOptions } from "../../lib/update/verify.ts";
import { FakeClock } from "../fakes/state.ts";

const OPTIONS: VerifyOptions = { healthTimeoutSeconds: 30, stableSeconds: 10 };

function info(overrides: Partial<ContainerInfo> = {}): ContainerInfo {
  return {
    id: "c1",
    name: "bot",
    imageRef: "registry.example.com/org/bot:2",
    imageId: "sha256:2",
    running: true,
    restarting: false,
    status: "running",
    exitCode: 0,
    restartCount: 0,
    health: null,
    startedAt: "2026-11-29T12:00:00Z",
    labels: {},
    inspect: {} as ContainerInfo["inspect"],
    ...overrides,
  };
}

function fails(verdict: ReturnType<typeof judge>, reason: RegExp) {
  assert.ok(verdict && !verdict.ok, `a failure, got ${JSON.stringify(verdict)}`);
  assert.match(verdict.reason, reason);
}

Deno.test("a container that is gone fails at once", () => {
  fails(judge(null, 0, OPTIONS), /^the container disappeared$/);
});

Deno.test("a container that exited, with no restart policy to bring it back, fails at once", () => {
  const exited = info({ running: false, status: "exited", exitCode: 3 });
  fails(judge(exited, 0, OPTIONS), /^the container exited with code 3$/);
  fails(judge(exited, 60_000, OPTIONS), /exited with code 3/);
});

Deno.test("a container that restarted since the first look fails, even while it runs again", () => {
  fails(
    judge(info({ restartCount: 1 }), 0, OPTIONS, 0),
    /^the container is restarting \(restarts: 1/,
  );
  assert.equal(
    judge(info({ restartCount: 1 }), 0, OPTIONS, 1),
    null,
    "its earlier restarts count not",
  );
});

Deno.test("a container the daemon is restarting fails, whatever its count", () => {
  fails(
    judge(info({ running: false, restarting: true, exitCode: 2 }), 0, OPTIONS, 0),
    /restarting \(restarts: 0, exit code 2\)/,
  );
});

Deno.test("without a HEALTHCHECK it passes at stableSeconds, not a millisecond before", () => {
  assert.equal(judge(info(), 9_999, OPTIONS), null);
  const verdict = judge(info(), 10_000, OPTIONS);
  assert.deepEqual(verdict, { ok: true, detail: "running for 10s without a restart" });
});

Deno.test("with a HEALTHCHECK: healthy passes at stableSeconds, not a millisecond before", () => {
  assert.equal(judge(info({ health: "healthy" }), 9_999, OPTIONS), null);
  assert.deepEqual(judge(info({ health: "healthy" }), 10_000, OPTIONS), {
    ok: true,
    detail: "healthy, and running for 10s",
  });
});

Deno.test("with a HEALTHCHECK: unhealthy fails at once, starting fails at healthTimeoutSeconds", () => {
  fails(judge(info({ health: "unhealthy" }), 0, OPTIONS), /^the container is unhealthy$/);
  assert.equal(judge(info({ health: "starting" }), 29_999, OPTIONS), null);
  fails(
    judge(info({ health: "starting" }), 30_000, OPTIONS),
    /^the container did not become healthy within 30s$/,
  );
});

Deno.test("a container healthy before the timeout still waits out stableSeconds when that is longer", () => {
  const long = { healthTimeoutSeconds: 5, stableSeconds: 10 };
  assert.equal(judge(info({ health: "healthy" }), 6_000, long), null);
  assert.ok(judge(info({ health: "healthy" }), 10_000, long)?.ok);
});

Deno.test("verifyContainer counts restarts from its first look: earlier restarts are not a failure", async () => {
  // An old container put back by a rollback may have restarted before (count 2).
  const clock = new FakeClock();
  const seen = info({ restartCount: 2 });
  const docker = { inspectContainer: () => Promise.resolve(seen) };
  const verdict = await verifyContainer(docker, clock, "c1", { ...OPTIONS, pollMs: 1_000 });
  assert.ok(verdict.ok, JSON.stringify(verdict));
});

Deno.test("verifyContainer on a container gone at the first look fails with 'the container disappeared'", async () => {
  const gone = { inspectContainer: () => Promise.resolve(null) };
  const verdict = await verifyContainer(gone, new FakeClock(), "c1", OPTIONS);
  assert.deepEqual(verdict, { ok: false, reason: "the container disappeared" });
});
