/**
 * Checks the real test environment itself: that scripts/test-env.sh left a registry with every
 * test image, and that each image behaves as test/support/env.ts promises the other tests.
 */

import assert from "node:assert/strict";
import {
  docker,
  dockerOk,
  IMAGE_TAGS,
  IMAGES,
  type ImageTag,
  REGISTRY,
  requireTestEnv,
  uniqueName,
} from "./env.ts";

const VERSION_OF: Record<ImageTag, string> = {
  "v1": "1",
  "v2": "2",
  "crash": "2",
  "unhealthy": "2",
  "healthy-v1": "1",
  "healthy-v2": "2",
  "slow-healthy": "2",
};

/** Runs a detached container with a fresh host folder on /data; removes both afterwards. */
async function withContainer(
  tag: ImageTag,
  body: (name: string, dataDir: string) => Promise<unknown>,
): Promise<void> {
  const name = uniqueName(`env-${tag}`);
  const dataDir = await Deno.makeTempDir({ prefix: "hyperbot-test-data-" });
  try {
    await dockerOk("run", "-d", "--name", name, "-v", `${dataDir}:/data`, IMAGES[tag]);
    await body(name, dataDir);
  } finally {
    await docker("rm", "-f", name);
    await Deno.remove(dataDir, { recursive: true });
  }
}

async function inspectField(name: string, template: string): Promise<string> {
  return await dockerOk("inspect", "-f", template, name);
}

/** Polls until `read()` returns `want`; returns the seconds it took, or throws after `limitS`. */
async function waitFor(
  what: string,
  read: () => Promise<string>,
  want: string,
  limitS: number,
): Promise<number> {
  const start = performance.now();
  let last = "";
  while (performance.now() - start < limitS * 1000) {
    last = await read();
    if (last === want) return (performance.now() - start) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what}: still "${last}" after ${limitS} s, expected "${want}"`);
}

async function readBootLog(dataDir: string): Promise<string> {
  try {
    return (await Deno.readTextFile(`${dataDir}/boot.log`)).trim();
  } catch {
    return "";
  }
}

Deno.test("the test environment has a daemon, a registry login and every test image", async () => {
  await requireTestEnv();
});

Deno.test("the test registry refuses anonymous requests", async () => {
  await requireTestEnv();
  const response = await fetch(`http://${REGISTRY}/v2/hyperbot/app/tags/list`);
  await response.body?.cancel();
  assert.equal(response.status, 401);
});

Deno.test("every test image carries the labels, env, volume, workdir and port it promises", async () => {
  await requireTestEnv();
  for (const tag of IMAGE_TAGS) {
    await dockerOk("pull", "-q", IMAGES[tag]);
    const config = JSON.parse(
      await dockerOk("image", "inspect", "-f", "{{json .Config}}", IMAGES[tag]),
    );
    const version = VERSION_OF[tag];
    assert.equal(config.Labels["org.opencontainers.image.version"], version, tag);
    assert.equal(config.Labels["hyperbot.test.image"], tag, tag);
    assert.ok(config.Env.includes(`APP_VERSION=${version}`), `${tag}: ${config.Env}`);
    assert.ok(config.Env.includes(`IMAGE_ONLY_V${version}=yes`), `${tag}: ${config.Env}`);
    const other = version === "1" ? "2" : "1";
    assert.ok(!config.Env.some((e: string) => e.startsWith(`IMAGE_ONLY_V${other}=`)), tag);
    assert.deepEqual(Object.keys(config.Volumes ?? {}), ["/data"], tag);
    assert.equal(config.WorkingDir, "/app", tag);
    assert.deepEqual(Object.keys(config.ExposedPorts ?? {}), ["8080/tcp"], tag);
    const hasHealthcheck = tag.includes("healthy");
    assert.equal(
      config.Healthcheck !== undefined && config.Healthcheck !== null,
      hasHealthcheck,
      tag,
    );
  }
});

Deno.test("v1 appends its boot line to /data and exits 0 within 3 s of SIGTERM", async () => {
  await requireTestEnv();
  await withContainer("v1", async (name, dataDir) => {
    await waitFor("boot.log", () => readBootLog(dataDir), "started v1", 10);
    const start = performance.now();
    await dockerOk("stop", "-t", "10", name);
    const seconds = (performance.now() - start) / 1000;
    assert.ok(seconds < 3, `docker stop took ${seconds.toFixed(1)} s`);
    assert.equal(await inspectField(name, "{{.State.ExitCode}}"), "0");
    await dockerOk("start", name);
    await waitFor("boot.log", () => readBootLog(dataDir), "started v1\nstarted v1", 10);
  });
});

Deno.test("crash exits with code 1 about one second after it starts", async () => {
  await requireTestEnv();
  await withContainer("crash", async (name, dataDir) => {
    const seconds = await waitFor(
      "state",
      () => inspectField(name, "{{.State.Status}}"),
      "exited",
      10,
    );
    assert.ok(seconds < 5, `exited after ${seconds.toFixed(1)} s`);
    assert.equal(await inspectField(name, "{{.State.ExitCode}}"), "1");
    assert.equal(await readBootLog(dataDir), "started crash");
  });
});

Deno.test("health checks: unhealthy, healthy-v1 and healthy-v2 settle within 10 s", async () => {
  await requireTestEnv();
  const health = (name: string) => () => inspectField(name, "{{.State.Health.Status}}");
  await Promise.all([
    withContainer("unhealthy", (name) => waitFor("unhealthy", health(name), "unhealthy", 10)),
    withContainer("healthy-v1", (name) => waitFor("healthy-v1", health(name), "healthy", 10)),
    withContainer("healthy-v2", (name) => waitFor("healthy-v2", health(name), "healthy", 10)),
  ]);
});

Deno.test("slow-healthy reports starting for about 3 s, then healthy", async () => {
  await requireTestEnv();
  await withContainer("slow-healthy", async (name) => {
    const read = () => inspectField(name, "{{.State.Health.Status}}");
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(await read(), "starting");
    const seconds = await waitFor("slow-healthy", read, "healthy", 15);
    assert.ok(seconds > 0.5, `healthy too soon: ${seconds.toFixed(1)} s after the first check`);
  });
});
