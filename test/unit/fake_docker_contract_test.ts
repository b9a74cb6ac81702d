/**
 * The DockerEngine contract against FakeDockerEngine, and the fake's injected failures.
 */

import assert from "node:assert/strict";
import { DockerError } from "../../lib/errors.ts";
import { FakeDockerEngine } from "../fakes/docker.ts";
import {
  body,
  CONTRACT_IMAGE,
  CONTRACT_IMAGE_CONFIG,
  CONTRACT_IMAGE_LOGS,
  engineContract,
  variantRef,
  VARIANTS,
} from "../docker/engine_contract.ts";

function contractFake(): FakeDockerEngine {
  const fake = new FakeDockerEngine({
    logsOf: new Map([[CONTRACT_IMAGE, CONTRACT_IMAGE_LOGS]]),
    // What the real daemon gets from the container's settings, the fake is told by image.
    ignoresStopSignal: variantRef(VARIANTS.ignoresTerm),
    exitAfterStart: new Map([[variantRef(VARIANTS.crash), 3], [variantRef(VARIANTS.exit0), 0]]),
    healthOf: new Map([[variantRef(VARIANTS.unhealthy), "unhealthy"]]),
    failStartOf: variantRef(VARIANTS.noProgram),
  });
  fake.addImage(CONTRACT_IMAGE, CONTRACT_IMAGE_CONFIG);
  return fake;
}

engineContract("fake", () => {
  const engine = contractFake();
  const repository = "registry.example.com/hbt-engine/test";
  return Promise.resolve({
    engine,
    registry: {
      repository,
      auth: null,
      publish: (tag: string, build: number) => {
        engine.publishImage(`${repository}:${tag}`, {
          ...CONTRACT_IMAGE_CONFIG,
          Labels: { ...CONTRACT_IMAGE_CONFIG.Labels, "hbt.build": String(build) },
        });
        return Promise.resolve();
      },
    },
    cleanup: () => Promise.resolve(),
  });
});

const APP_V1 = "registry.example.com/org/app:1";
const APP_V2 = "registry.example.com/org/app:2";
const HEALTHY = { Cmd: ["/app/run"], Healthcheck: { Test: ["CMD", "/app/check"] } };

async function botOnV1(fake: FakeDockerEngine): Promise<string> {
  fake.addImage(APP_V1, HEALTHY);
  return await fake.runContainer("bot", {
    Image: APP_V1,
    HostConfig: { PortBindings: { "8080/tcp": [{ HostIp: "", HostPort: "8080" }] } },
  });
}

async function rejectsDocker(promise: Promise<unknown>, message: RegExp, status?: number) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof DockerError, `expected DockerError, got ${err}`);
    assert.match(err.message, message);
    if (status !== undefined) assert.equal(err.status, status);
    return true;
  });
}

Deno.test("the fake logs every call with its method and arguments", async () => {
  const fake = new FakeDockerEngine();
  await fake.inspectContainer("bot");
  await fake.removeContainer("bot", { force: true });
  assert.deepEqual(fake.calls, [
    { method: "inspectContainer", args: ["bot"] },
    { method: "removeContainer", args: ["bot", { force: true }] },
  ]);
  assert.deepEqual(fake.callsTo("removeContainer"), [["bot", { force: true }]]);
});

Deno.test("a pull fetches a published image and tags it, and a second pull is up to date", async () => {
  const fake = new FakeDockerEngine();
  const id = fake.publishImage(APP_V2, HEALTHY);
  const statuses: string[] = [];
  await fake.pullImage(APP_V2, { onProgress: (p) => statuses.push(p.status) });
  assert.equal((await fake.inspectImage(APP_V2))?.id, id);
  assert.match(statuses.at(-1)!, /Downloaded newer image/);
  await fake.pullImage(APP_V2, { onProgress: (p) => statuses.push(p.status) });
  assert.match(statuses.at(-1)!, /Image is up to date/);
  const [image] = await fake.listImages("registry.example.com/org/app");
  assert.match(image.repoDigests[0], /^registry\.example\.com\/org\/app@sha256:/);
});

Deno.test("publishing a new version under the same tag moves the tag on pull", async () => {
  const fake = new FakeDockerEngine();
  const old = fake.addImage(APP_V1, { Cmd: ["old"] });
  const fresh = fake.publishImage(APP_V1, { Cmd: ["new"] });
  await fake.pullImage(APP_V1);
  assert.equal((await fake.inspectImage(APP_V1))?.id, fresh);
  assert.deepEqual((await fake.inspectImage(old))?.repoTags, []);
});

Deno.test("a pull of an unpublished image fails with manifest unknown", async () => {
  const fake = new FakeDockerEngine();
  await rejectsDocker(fake.pullImage(APP_V2), /manifest unknown/, 404);
});

Deno.test("failPull makes pulls fail the named way", async () => {
  const fake = new FakeDockerEngine({ failPull: "disk_full" });
  fake.publishImage(APP_V2);
  await rejectsDocker(fake.pullImage(APP_V2), /no space left on device/);
  fake.options.failPull = new Map([[APP_V2, "unauthorized" as const]]);
  await rejectsDocker(fake.pullImage(APP_V2), /no basic auth credentials/);
  fake.options.failPull = "unreachable";
  await rejectsDocker(fake.pullImage(APP_V2), /no such host/);
});

Deno.test("an unreachable fake daemon fails every call with the socket in the message", async () => {
  const fake = new FakeDockerEngine({ unreachable: true });
  await assert.rejects(fake.ping(), (err: unknown) => {
    assert.ok(err instanceof DockerError);
    assert.match(err.message, /cannot reach the Docker daemon at \/var\/run\/docker\.sock/);
    assert.equal(err.hint, "systemctl start docker");
    return true;
  });
});

Deno.test("a second container binding the same host port cannot start while the first runs", async () => {
  const fake = new FakeDockerEngine();
  await botOnV1(fake);
  fake.addImage(APP_V2, HEALTHY);
  const id = await fake.createContainer("bot-new", {
    Image: APP_V2,
    HostConfig: { PortBindings: { "8080/tcp": [{ HostPort: "8080" }] } },
    NetworkingConfig: { EndpointsConfig: {} },
  });
  await rejectsDocker(fake.startContainer(id), /port is already allocated/, 500);
  await fake.stopContainer("bot");
  await fake.startContainer(id);
  assert.equal((await fake.inspectContainer(id))?.running, true);
});

Deno.test("portConflictFor fails the start of that image even with no other container", async () => {
  const fake = new FakeDockerEngine({ portConflictFor: APP_V1 });
  await assert.rejects(botOnV1(fake), /port is already allocated/);
});

Deno.test("failStartOf makes the start fail like an OCI runtime error and leaves it created", async () => {
  const fake = new FakeDockerEngine({ failStartOf: [APP_V2] });
  fake.addImage(APP_V2, HEALTHY);
  const id = await fake.createContainer("bot-new", body({ Image: APP_V2 }));
  await rejectsDocker(fake.startContainer(id), /OCI runtime create failed/, 500);
  assert.equal((await fake.inspectContainer(id))?.status, "created");
});

Deno.test("exitAfterStart makes the container exit with that code right after it starts", async () => {
  const fake = new FakeDockerEngine({ exitAfterStart: new Map([[APP_V2, 3]]) });
  fake.addImage(APP_V2, HEALTHY);
  const id = await fake.createContainer("bot-new", body({ Image: APP_V2 }));
  await fake.startContainer(id);
  const info = await fake.inspectContainer(id);
  assert.equal(info?.running, false);
  assert.equal(info?.status, "exited");
  assert.equal(info?.exitCode, 3);
});

Deno.test("a container that exits under restart policy always keeps restarting", async () => {
  const fake = new FakeDockerEngine({ exitAfterStart: new Map([[APP_V2, 1]]) });
  fake.addImage(APP_V2);
  const id = await fake.createContainer(
    "bot-new",
    body({ Image: APP_V2, HostConfig: { RestartPolicy: { Name: "always" } } }),
  );
  await fake.startContainer(id);
  const first = await fake.inspectContainer(id);
  const second = await fake.inspectContainer(id);
  assert.equal(first?.restarting, true);
  assert.ok(second!.restartCount > first!.restartCount);
});

Deno.test("crashLoop makes the restart count grow with every inspect until stopped", async () => {
  const fake = new FakeDockerEngine({ crashLoop: APP_V2 });
  fake.addImage(APP_V2, HEALTHY);
  const id = await fake.createContainer("bot-new", body({ Image: APP_V2 }));
  await fake.startContainer(id);
  const a = await fake.inspectContainer(id);
  const b = await fake.inspectContainer(id);
  assert.equal(a?.restarting, true);
  assert.equal(a?.health, "unhealthy");
  assert.equal(b?.restartCount, 2);
  await fake.stopContainer(id);
  const c = await fake.inspectContainer(id);
  assert.equal(c?.restarting, false);
  assert.equal(c?.restartCount, 2);
});

Deno.test("healthOf sequences advance one status per inspect and the last one stays", async () => {
  const fake = new FakeDockerEngine({
    healthOf: new Map([[APP_V2, ["starting", "starting", "unhealthy"]]]),
  });
  fake.addImage(APP_V2, HEALTHY);
  const id = await fake.createContainer("bot-new", body({ Image: APP_V2 }));
  await fake.startContainer(id);
  const seen = [];
  for (let i = 0; i < 4; i++) seen.push((await fake.inspectContainer(id))?.health);
  assert.deepEqual(seen, ["starting", "starting", "unhealthy", "unhealthy"]);
});

Deno.test("an image without a healthcheck gives containers no health", async () => {
  const fake = new FakeDockerEngine();
  fake.addImage(APP_V2, { Cmd: ["/app/run"] });
  const id = await fake.runContainer("bot", { Image: APP_V2 });
  assert.equal((await fake.inspectContainer(id))?.health, null);
});

Deno.test("failNext fails the next calls of one method with the given status", async () => {
  const fake = new FakeDockerEngine();
  await botOnV1(fake);
  fake.failNext("renameContainer", { status: 500, message: "rename failed" });
  await rejectsDocker(fake.renameContainer("bot", "bot-old"), /rename failed/, 500);
  await fake.renameContainer("bot", "bot-old");
  assert.deepEqual(fake.containerNames(), ["bot-old"]);
});

Deno.test("a container keeps HostConfig as given and lists its networks with aliases and static IPs", async () => {
  const fake = new FakeDockerEngine();
  fake.addImage(APP_V1);
  const id = await fake.runContainer("bot", {
    Image: APP_V1,
    HostConfig: { NetworkMode: "net-a", RestartPolicy: { Name: "unless-stopped" } },
    NetworkingConfig: {
      EndpointsConfig: {
        "net-a": { Aliases: ["bot"], IPAMConfig: { IPv4Address: "10.231.0.10" } },
        "net-b": { Aliases: ["bot-b"] },
      },
    },
  });
  const info = await fake.inspectContainer(id);
  const networks = info!.inspect.NetworkSettings.Networks!;
  assert.deepEqual(Object.keys(networks), ["net-a", "net-b"]);
  assert.deepEqual(networks["net-a"].Aliases, ["bot"]);
  assert.equal(networks["net-a"].IPAddress, "10.231.0.10");
  assert.deepEqual(info!.inspect.HostConfig.RestartPolicy, { Name: "unless-stopped" });
});

Deno.test("stopping uses exitCodeOnStop, and SIGKILL gives 137", async () => {
  const fake = new FakeDockerEngine({ exitCodeOnStop: new Map([[APP_V1, 143]]) });
  await botOnV1(fake);
  await fake.stopContainer("bot", { timeoutSeconds: 10 });
  assert.equal((await fake.inspectContainer("bot"))?.exitCode, 143);
  await fake.startContainer("bot");
  await fake.stopContainer("bot", { signal: "SIGKILL" });
  assert.equal((await fake.inspectContainer("bot"))?.exitCode, 137);
});

Deno.test("an explicit Cmd keeps the image's Entrypoint", async () => {
  const fake = new FakeDockerEngine();
  fake.addImage(APP_V1, { Entrypoint: ["/entry"], Cmd: ["default"] });
  const id = await fake.createContainer("bot", body({ Image: APP_V1, Cmd: ["custom"] }));
  const config = (await fake.inspectContainer(id))!.inspect.Config;
  assert.deepEqual(config.Entrypoint, ["/entry"]);
  assert.deepEqual(config.Cmd, ["custom"]);
});
