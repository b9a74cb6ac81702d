/**
 * The DockerEngine contract: one suite that runs against FakeDockerEngine
 * (test/unit/fake_docker_contract_test.ts) and SocketDockerEngine on a real daemon
 * (test/docker/engine_real_test.ts), so the fake behaves like the daemon where tests rely on it.
 */

import assert from "node:assert/strict";
import type {
  ContainerConfig,
  CreateContainerBody,
  DockerEngine,
  RegistryAuth,
} from "../../lib/docker.ts";
import { DockerError } from "../../lib/errors.ts";
import { eventually } from "../support/wait.ts";

/** The contract image: built by the real test from this Dockerfile, added to the fake with CONTRACT_IMAGE_CONFIG. */
export const CONTRACT_IMAGE = "hbt-engine-test:1";

export const CONTRACT_IMAGE_DOCKERFILE = `FROM scratch
COPY busybox /bin/busybox
ENV A=1 B=2
LABEL hbt.test=1 hbt.from=image
WORKDIR /app
VOLUME /data
EXPOSE 8080
USER 65534
HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD ["/bin/busybox", "true"]
CMD ["/bin/busybox", "sh", "-c", "trap 'exit 0' TERM; echo hello-stdout; /bin/busybox sleep 0.3; echo hello-stderr >&2; while true; do /bin/busybox sleep 1; done"]
`;

/** What `docker image inspect` shows as Config for the image built from CONTRACT_IMAGE_DOCKERFILE. */
export const CONTRACT_IMAGE_CONFIG: ContainerConfig = {
  User: "65534",
  ExposedPorts: { "8080/tcp": {} },
  Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1", "B=2"],
  Cmd: [
    "/bin/busybox",
    "sh",
    "-c",
    "trap 'exit 0' TERM; echo hello-stdout; /bin/busybox sleep 0.3; echo hello-stderr >&2; while true; do /bin/busybox sleep 1; done",
  ],
  Volumes: { "/data": {} },
  WorkingDir: "/app",
  Labels: { "hbt.from": "image", "hbt.test": "1" },
  Healthcheck: {
    Test: ["CMD", "/bin/busybox", "true"],
    Interval: 1_000_000_000,
    Timeout: 2_000_000_000,
    Retries: 3,
  },
};

/** The lines the contract image writes when it starts: stdout, then (0.3 s later, so the order is sure) stderr. */
export const CONTRACT_IMAGE_LOGS = ["hello-stdout", "hello-stderr"];

export interface ContractSubject {
  engine: DockerEngine;
  /** A registry the engine pulls from: the fake's map, or the private test registry. */
  registry: {
    /** A repository of ours in it (`host/path`, no tag). */
    repository: string;
    auth: RegistryAuth | null;
    /**
     * Makes `<repository>:<tag>` a new image in the registry, build `build` of the contract
     * image (label `hbt.build`), as a release pushed again under the same tag is; the engine
     * does not have it until it pulls.
     */
    publish(tag: string, build: number): Promise<void>;
  };
  /** Removes every container (and its volumes), network and extra tag the test made. */
  cleanup(): Promise<void>;
}

/** Every name the suite creates starts with this, so cleanup can find them. */
export const PREFIX = "hbt-engine-";

export function body(extra: Partial<CreateContainerBody> = {}): CreateContainerBody {
  return {
    Image: CONTRACT_IMAGE,
    ...extra,
    HostConfig: extra.HostConfig ?? {},
    NetworkingConfig: extra.NetworkingConfig ?? { EndpointsConfig: {} },
  };
}

async function rejectsWithStatus(promise: Promise<unknown>, status: number, message?: RegExp) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof DockerError, `expected a DockerError, got ${err}`);
    assert.equal(err.status, status, `status of: ${err.message}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

/**
 * Tags of the contract image under which a test asks for a behaviour the fake must be told of
 * by image (test/unit/fake_docker_contract_test.ts names them in its options); the real daemon
 * gets it from the container's own settings given beside it.
 */
export const VARIANTS = {
  ignoresTerm: "ignores-term",
  crash: "crash",
  exit0: "exit0",
  unhealthy: "unhealthy",
  noProgram: "no-program",
} as const;

/** `hbt-engine-tagged:<tag>`: the real test's cleanup removes these tags. */
export function variantRef(tag: string): string {
  return `${PREFIX}tagged:${tag}`;
}

async function variant(engine: DockerEngine, tag: string): Promise<string> {
  const image = await engine.inspectImage(CONTRACT_IMAGE);
  assert.ok(image, "the contract image is present");
  await engine.tagImage(image.id, `${PREFIX}tagged`, tag);
  return variantRef(tag);
}

/** Runs half a second, then exits 3 (as root: the image's user cannot matter here). */
const CRASH = {
  Entrypoint: ["/bin/busybox", "sh", "-c", "/bin/busybox sleep 0.5; exit 3"],
  User: "0",
};
const EXIT_0 = {
  Entrypoint: ["/bin/busybox", "sh", "-c", "/bin/busybox sleep 0.5; exit 0"],
  User: "0",
};

async function waitForLogs(engine: DockerEngine, id: string) {
  // The trap is set before the first line: after it, SIGTERM ends the container with 0.
  await eventually("the first line", async () => {
    return (await engine.containerLogs(id, 10)).includes(CONTRACT_IMAGE_LOGS[0]);
  }, { timeoutMs: 15_000 });
}

/** Registers the contract's tests under `label` ("fake", "real"). */
export function engineContract(label: string, factory: () => Promise<ContractSubject>): void {
  const test = (
    name: string,
    fn: (engine: DockerEngine, registry: ContractSubject["registry"]) => Promise<void>,
  ) =>
    Deno.test({
      name: `${label} engine: ${name}`,
      sanitizeResources: false,
      sanitizeOps: false,
      fn: async () => {
        const subject = await factory();
        try {
          await fn(subject.engine, subject.registry);
        } finally {
          await subject.cleanup();
        }
      },
    });

  test("ping reports an API version no newer than 1.47", async (engine) => {
    const version = await engine.ping();
    assert.match(version.apiVersion, /^1\.\d+$/);
    assert.ok(Number(version.apiVersion.split(".")[1]) <= 47);
    assert.ok(version.engineVersion.length > 0);
  });

  test("a created container is found by name and by ID, created but not running", async (engine) => {
    const name = `${PREFIX}created`;
    const id = await engine.createContainer(name, body());
    const image = await engine.inspectImage(CONTRACT_IMAGE);
    assert.ok(image);
    for (const key of [name, id]) {
      const info = await engine.inspectContainer(key);
      assert.ok(info, `inspect ${key}`);
      assert.equal(info.id, id);
      assert.equal(info.name, name);
      assert.equal(info.imageRef, CONTRACT_IMAGE);
      assert.equal(info.imageId, image.id);
      assert.equal(info.running, false);
      assert.equal(info.status, "created");
      assert.equal(info.inspect.Config.Image, CONTRACT_IMAGE);
    }
  });

  test("the restart policy of a running container can be changed", async (engine) => {
    const name = `${PREFIX}policy`;
    const id = await engine.createContainer(
      name,
      body({ HostConfig: { RestartPolicy: { Name: "always" } } }),
    );
    await engine.startContainer(id);
    await engine.setRestartPolicy(id, { Name: "no" });
    const info = await engine.inspectContainer(id);
    assert.equal(info?.inspect.HostConfig.RestartPolicy?.Name, "no");
    assert.ok(info?.running);
  });

  test("inspecting a container that does not exist returns null", async (engine) => {
    assert.equal(await engine.inspectContainer(`${PREFIX}absent`), null);
  });

  test("creating a container under a name in use fails with a 409 conflict", async (engine) => {
    const name = `${PREFIX}taken`;
    await engine.createContainer(name, body());
    await rejectsWithStatus(engine.createContainer(name, body()), 409, /already in use/);
  });

  test("creating a container from an image that is not present fails with 404", async (engine) => {
    await rejectsWithStatus(
      engine.createContainer(`${PREFIX}noimage`, body({ Image: "hbt-engine-absent:1" })),
      404,
      /No such image/,
    );
  });

  test("the image config is merged into a new container the way the daemon merges it", async (engine) => {
    const id = await engine.createContainer(
      `${PREFIX}merge`,
      body({ Env: ["B=3", "C=4"], Labels: { "hbt.from": "container", "hbt.own": "x" } }),
    );
    const info = await engine.inspectContainer(id);
    assert.ok(info);
    const config = info.inspect.Config;
    assert.deepEqual([...(config.Env ?? [])].sort(), [
      "A=1",
      "B=3",
      "C=4",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]);
    assert.deepEqual(config.Cmd, CONTRACT_IMAGE_CONFIG.Cmd);
    assert.deepEqual(info.labels, { "hbt.from": "container", "hbt.own": "x", "hbt.test": "1" });
    assert.equal(config.WorkingDir, "/app");
    assert.equal(config.User, "65534");
    assert.ok(config.ExposedPorts && "8080/tcp" in config.ExposedPorts);
    assert.ok(config.Volumes && "/data" in config.Volumes);
    assert.deepEqual(config.Healthcheck?.Test, CONTRACT_IMAGE_CONFIG.Healthcheck?.Test);
  });

  test("a container given an Entrypoint and no Cmd does not inherit the image's Cmd", async (engine) => {
    const id = await engine.createContainer(
      `${PREFIX}entrypoint`,
      body({ Entrypoint: ["/bin/busybox", "sleep", "60"], User: "0" }),
    );
    const info = await engine.inspectContainer(id);
    assert.ok(info);
    assert.deepEqual(info.inspect.Config.Entrypoint, ["/bin/busybox", "sleep", "60"]);
    assert.equal((info.inspect.Config.Cmd ?? []).length, 0);
    assert.equal(info.inspect.Config.User, "0");
  });

  test("an image volume without a mount becomes an anonymous volume with a generated name", async (engine) => {
    const id = await engine.createContainer(`${PREFIX}anon`, body());
    const info = await engine.inspectContainer(id);
    assert.ok(info);
    const mounts = info.inspect.Mounts ?? [];
    assert.equal(mounts.length, 1);
    assert.equal(mounts[0].Type, "volume");
    assert.equal(mounts[0].Destination, "/data");
    assert.match(mounts[0].Name ?? "", /^[0-9a-f]{64}$/);
    assert.equal(mounts[0].RW, true);
  });

  test("a named volume in Binds replaces the image's anonymous volume", async (engine) => {
    const volume = `${PREFIX}vol`;
    const id = await engine.createContainer(
      `${PREFIX}named`,
      body({ HostConfig: { Binds: [`${volume}:/data`] } }),
    );
    const info = await engine.inspectContainer(id);
    assert.ok(info);
    const mounts = info.inspect.Mounts ?? [];
    assert.equal(mounts.length, 1);
    assert.equal(mounts[0].Name, volume);
    assert.equal(mounts[0].Destination, "/data");
    assert.deepEqual(info.inspect.HostConfig.Binds, [`${volume}:/data`]);
  });

  test("renaming moves the name, and renaming onto a taken name fails with a 409 conflict", async (engine) => {
    const a = await engine.createContainer(`${PREFIX}a`, body());
    const b = await engine.createContainer(`${PREFIX}b`, body());
    await engine.renameContainer(a, `${PREFIX}a-old`);
    assert.equal(await engine.inspectContainer(`${PREFIX}a`), null);
    assert.equal((await engine.inspectContainer(`${PREFIX}a-old`))?.id, a);
    await rejectsWithStatus(engine.renameContainer(b, `${PREFIX}a-old`), 409);
    assert.equal((await engine.inspectContainer(b))?.name, `${PREFIX}b`);
  });

  test("a started container runs, becomes healthy, and stops with exit code 0", async (engine) => {
    const id = await engine.createContainer(`${PREFIX}run`, body());
    await engine.startContainer(id);
    const running = await engine.inspectContainer(id);
    assert.ok(running?.running);
    assert.equal(running.status, "running");
    assert.notEqual(running.startedAt, "0001-01-01T00:00:00Z");
    assert.ok(running.health === "starting" || running.health === "healthy");
    await eventually("the container is healthy", async () => {
      const info = await engine.inspectContainer(id);
      return info?.health === "healthy" ? true : undefined;
    }, { timeoutMs: 15_000 });
    // Starting a running container again is not an error.
    await engine.startContainer(id);
    await engine.stopContainer(id, { timeoutSeconds: 10 });
    const stopped = await engine.inspectContainer(id);
    assert.ok(stopped);
    assert.equal(stopped.running, false);
    assert.equal(stopped.status, "exited");
    assert.equal(stopped.exitCode, 0);
    // Stopping a stopped container is not an error.
    await engine.stopContainer(id, { timeoutSeconds: 1 });
  });

  test("stopping with SIGKILL ends the container with exit code 137", async (engine) => {
    const id = await engine.createContainer(`${PREFIX}kill`, body());
    await engine.startContainer(id);
    await engine.stopContainer(id, { timeoutSeconds: 5, signal: "SIGKILL" });
    const info = await engine.inspectContainer(id);
    assert.equal(info?.running, false);
    assert.equal(info?.exitCode, 137);
  });

  test("a container without a healthcheck reports no health", async (engine) => {
    const id = await engine.createContainer(
      `${PREFIX}nohealth`,
      body({ Healthcheck: { Test: ["NONE"] } }),
    );
    await engine.startContainer(id);
    const info = await engine.inspectContainer(id);
    assert.equal(info?.health, null);
    await engine.stopContainer(id, { timeoutSeconds: 5, signal: "SIGKILL" });
  });

  test("removing a running container without force fails with 409, and with force succeeds", async (engine) => {
    // A named volume: removal keeps volumes, and cleanup finds named ones by their prefix.
    const id = await engine.createContainer(
      `${PREFIX}rm`,
      body({ HostConfig: { Binds: [`${PREFIX}rm:/data`] } }),
    );
    await engine.startContainer(id);
    await rejectsWithStatus(engine.removeContainer(id), 409);
    await engine.removeContainer(id, { force: true });
    assert.equal(await engine.inspectContainer(id), null);
    // Removing it again is not an error.
    await engine.removeContainer(id);
  });

  test("starting, stopping or renaming a container that does not exist fails with 404", async (engine) => {
    await rejectsWithStatus(engine.startContainer(`${PREFIX}ghost`), 404);
    await rejectsWithStatus(engine.stopContainer(`${PREFIX}ghost`, { timeoutSeconds: 1 }), 404);
    await rejectsWithStatus(engine.renameContainer(`${PREFIX}ghost`, `${PREFIX}ghost2`), 404);
  });

  test("logs hold the last lines of stdout and stderr", async (engine) => {
    const id = await engine.createContainer(`${PREFIX}logs`, body());
    await engine.startContainer(id);
    const logs = await eventually("both lines are logged", async () => {
      const text = await engine.containerLogs(id, 10);
      return CONTRACT_IMAGE_LOGS.every((l) => text.includes(l)) ? text : undefined;
    }, { timeoutMs: 15_000 });
    assert.equal(logs, CONTRACT_IMAGE_LOGS.map((l) => `${l}\n`).join(""));
    assert.equal(await engine.containerLogs(id, 1), "hello-stderr\n");
    await engine.stopContainer(id, { timeoutSeconds: 5, signal: "SIGKILL" });
  });

  test("an image is found by reference and by ID, and an absent one is null", async (engine) => {
    const byRef = await engine.inspectImage(CONTRACT_IMAGE);
    assert.ok(byRef);
    assert.match(byRef.id, /^sha256:[0-9a-f]{64}$/);
    assert.ok(byRef.repoTags.includes(CONTRACT_IMAGE));
    assert.equal(byRef.config.WorkingDir, "/app");
    assert.equal((await engine.inspectImage(byRef.id))?.id, byRef.id);
    assert.equal(await engine.inspectImage("hbt-engine-absent:1"), null);
  });

  test("a tag added to an image is listed by repository, and removing it by reference only untags", async (engine) => {
    const image = await engine.inspectImage(CONTRACT_IMAGE);
    assert.ok(image);
    await engine.tagImage(image.id, `${PREFIX}tagged`, "t1");
    const listed = await engine.listImages(`${PREFIX}tagged`);
    assert.deepEqual(listed.map((i) => i.id), [image.id]);
    assert.ok(listed[0].repoTags.includes(`${PREFIX}tagged:t1`));
    // Referenced by two repositories: the daemon refuses to delete it by ID.
    assert.equal(await engine.removeImage(image.id), false);
    assert.equal(await engine.removeImage(`${PREFIX}tagged:t1`), true);
    assert.deepEqual(await engine.listImages(`${PREFIX}tagged`), []);
    assert.ok(await engine.inspectImage(CONTRACT_IMAGE));
    assert.equal(await engine.removeImage("hbt-engine-absent:1"), false);
  });

  test("an image used by a container is not removed", async (engine) => {
    const image = await engine.inspectImage(CONTRACT_IMAGE);
    assert.ok(image);
    await engine.createContainer(`${PREFIX}user`, body());
    assert.equal(await engine.removeImage(image.id), false);
    assert.ok(await engine.inspectImage(image.id));
  });

  test("a container's network settings list its network with the given aliases", async (engine) => {
    const id = await engine.createContainer(
      `${PREFIX}net`,
      body({
        HostConfig: { NetworkMode: "bridge" },
        NetworkingConfig: { EndpointsConfig: { bridge: {} } },
      }),
    );
    const info = await engine.inspectContainer(id);
    assert.ok(info);
    assert.deepEqual(Object.keys(info.inspect.NetworkSettings.Networks ?? {}), ["bridge"]);
    assert.equal(info.inspect.HostConfig.NetworkMode, "bridge");
  });

  // ---- behaviours the unit tests take from the fake: each one shown on both engines --------

  test("a stop without options uses the container's own StopSignal: SIGTERM trapped exits 0, SIGKILL 137", async (engine) => {
    const graceful = await engine.createContainer(`${PREFIX}stop-term`, body());
    await engine.startContainer(graceful);
    await waitForLogs(engine, graceful);
    await engine.stopContainer(graceful);
    assert.equal((await engine.inspectContainer(graceful))?.exitCode, 0);
    const killed = await engine.createContainer(
      `${PREFIX}stop-kill`,
      body({ StopSignal: "SIGKILL" }),
    );
    await engine.startContainer(killed);
    await engine.stopContainer(killed);
    const info = await engine.inspectContainer(killed);
    assert.equal(info?.running, false);
    assert.equal(info?.exitCode, 137);
  });

  test("a stop without options waits the container's own StopTimeout, then kills", async (engine) => {
    const image = await variant(engine, VARIANTS.ignoresTerm);
    // busybox sleep as PID 1 ignores SIGTERM: only the kill after StopTimeout ends it.
    const id = await engine.createContainer(
      `${PREFIX}stop-timeout`,
      body({ Image: image, Entrypoint: ["/bin/busybox", "sleep", "60"], StopTimeout: 1 }),
    );
    await engine.startContainer(id);
    const started = Date.now();
    await engine.stopContainer(id);
    const took = Date.now() - started;
    const info = await engine.inspectContainer(id);
    assert.equal(info?.running, false);
    assert.equal(info?.exitCode, 137);
    if (label === "real") {
      // The fake has no time; on the daemon the 1 s of StopTimeout, not the default 10 s.
      assert.ok(took >= 800 && took < 8_000, `stopped after ${took} ms`);
    }
  });

  test("a container whose process ends after its start is exited with its exit code", async (engine) => {
    const image = await variant(engine, VARIANTS.crash);
    const id = await engine.createContainer(`${PREFIX}crash`, body({ Image: image, ...CRASH }));
    await engine.startContainer(id);
    const info = await eventually("the container exited", async () => {
      const i = await engine.inspectContainer(id);
      return i && !i.running && i.status === "exited" ? i : null;
    }, { timeoutMs: 15_000 });
    assert.equal(info.exitCode, 3);
    assert.equal(info.restarting, false);
    assert.equal(info.restartCount, 0);
  });

  test("a crashing container under restart policy 'always' crash-loops until it is stopped", async (engine) => {
    const image = await variant(engine, VARIANTS.crash);
    const id = await engine.createContainer(
      `${PREFIX}loop`,
      body({ Image: image, ...CRASH, HostConfig: { RestartPolicy: { Name: "always" } } }),
    );
    await engine.startContainer(id);
    await eventually("restarted twice", async () => {
      const i = await engine.inspectContainer(id);
      return i && i.restartCount >= 2 ? i : null;
    }, { timeoutMs: 30_000 });
    await engine.stopContainer(id, { timeoutSeconds: 1 });
    const stopped = await engine.inspectContainer(id);
    assert.equal(stopped?.running, false);
    assert.equal(stopped?.restarting, false);
  });

  for (const policy of ["always", "unless-stopped"]) {
    test(`restart policy '${policy}' restarts a container that exits with code 0 too`, async (engine) => {
      const image = await variant(engine, VARIANTS.exit0);
      const id = await engine.createContainer(
        `${PREFIX}exit0-${policy}`,
        body({ Image: image, ...EXIT_0, HostConfig: { RestartPolicy: { Name: policy } } }),
      );
      await engine.startContainer(id);
      await eventually("restarted after exit 0", async () => {
        const i = await engine.inspectContainer(id);
        return i && i.restartCount >= 1 ? i : null;
      }, { timeoutMs: 30_000 });
      await engine.stopContainer(id, { timeoutSeconds: 1 });
    });
  }

  test("a container whose health check fails becomes unhealthy", async (engine) => {
    const image = await variant(engine, VARIANTS.unhealthy);
    const id = await engine.createContainer(
      `${PREFIX}unhealthy`,
      body({
        Image: image,
        Healthcheck: { Test: ["CMD", "/bin/busybox", "false"], Interval: 1e9, Retries: 1 },
      }),
    );
    await engine.startContainer(id);
    const info = await eventually("unhealthy", async () => {
      const i = await engine.inspectContainer(id);
      return i?.health === "unhealthy" ? i : null;
    }, { timeoutMs: 30_000 });
    assert.ok(info.running, "unhealthy, and still running");
    await engine.stopContainer(id, { timeoutSeconds: 1, signal: "SIGKILL" });
  });

  test("a container whose program cannot be started fails to start, and does not run", async (engine) => {
    const image = await variant(engine, VARIANTS.noProgram);
    const id = await engine.createContainer(
      `${PREFIX}noprog`,
      body({ Image: image, Entrypoint: ["/app/start"] }),
    );
    await assert.rejects(engine.startContainer(id), (err: unknown) => {
      assert.ok(err instanceof DockerError, `expected a DockerError, got ${err}`);
      assert.match(err.message, /no such file or directory/);
      return true;
    });
    assert.equal((await engine.inspectContainer(id))?.running, false);
  });

  test("a second container cannot start on a host port a running one holds", async (engine) => {
    const port = String(20_000 + Math.floor(Math.random() * 20_000));
    const ports = {
      PortBindings: { "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: port }] },
    };
    const a = await engine.createContainer(`${PREFIX}port-a`, body({ HostConfig: ports }));
    const b = await engine.createContainer(`${PREFIX}port-b`, body({ HostConfig: ports }));
    await engine.startContainer(a);
    await assert.rejects(engine.startContainer(b), (err: unknown) => {
      assert.ok(err instanceof DockerError, `expected a DockerError, got ${err}`);
      assert.match(err.message, /port is already allocated|address already in use/);
      return true;
    });
    assert.equal((await engine.inspectContainer(b))?.running, false);
    assert.ok((await engine.inspectContainer(a))?.running);
    await engine.stopContainer(a, { timeoutSeconds: 1, signal: "SIGKILL" });
  });

  test(
    "a pull of a tag the registry does not have fails, and nothing is tagged",
    async (engine, registry) => {
      const ref = `${registry.repository}:no-such-tag`;
      await assert.rejects(engine.pullImage(ref, { auth: registry.auth }), (err: unknown) => {
        assert.ok(err instanceof DockerError, `expected a DockerError, got ${err}`);
        assert.match(err.message, /not found|manifest unknown/);
        return true;
      });
      assert.equal(await engine.inspectImage(ref), null);
    },
  );

  test(
    "a tag published again moves to the new image on the next pull",
    async (engine, registry) => {
      const ref = `${registry.repository}:moving`;
      await registry.publish("moving", 1);
      await engine.pullImage(ref, { auth: registry.auth });
      const first = await engine.inspectImage(ref);
      assert.equal(first?.config.Labels?.["hbt.build"], "1");
      await registry.publish("moving", 2);
      assert.equal((await engine.inspectImage(ref))?.id, first.id, "nothing moves before a pull");
      await engine.pullImage(ref, { auth: registry.auth });
      const second = await engine.inspectImage(ref);
      assert.ok(second);
      assert.notEqual(second.id, first.id);
      assert.equal(second.config.Labels?.["hbt.build"], "2");
      const old = await engine.inspectImage(first.id);
      assert.ok(old, "the old image is still there, by ID");
      assert.ok(!old.repoTags.some((t) => t.endsWith(":moving")), "but no longer under the tag");
    },
  );
}
