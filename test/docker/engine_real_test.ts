/**
 * SocketDockerEngine against the real daemon: the DockerEngine contract, then what only a real
 * daemon shows (version negotiation, networks, registry pulls with stored credentials).
 *
 * Needs a running dockerd (scripts/test-env.sh starts one) and, for the pull tests, the private
 * registry of scripts/test-env.sh on 127.0.0.1:5000. Without them these tests fail; they never
 * skip. Every container, network, volume and tag they make is named `hbt-engine-…`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { SocketDockerEngine } from "../../lib/adapters/docker_engine.ts";
import { DockerConfigCredentialStore } from "../../lib/adapters/credentials.ts";
import { runCommand } from "../../lib/adapters/run_command.ts";
import { DockerError } from "../../lib/errors.ts";
import { eventually } from "../support/wait.ts";
import {
  body,
  CONTRACT_IMAGE,
  CONTRACT_IMAGE_CONFIG,
  CONTRACT_IMAGE_DOCKERFILE,
  engineContract,
  PREFIX,
} from "./engine_contract.ts";

const SOCKET = "/var/run/docker.sock";
// The same values as scripts/test-env.sh; override with the environment when they differ.
const REGISTRY = Deno.env.get("HBT_REGISTRY") ?? "127.0.0.1:5000";
const REGISTRY_USER = Deno.env.get("HBT_REGISTRY_USER") ?? "hyperbot";
const REGISTRY_PASSWORD = Deno.env.get("HBT_REGISTRY_PASSWORD") ?? "hyperbot-test-pw";
/** Our own repository in the private registry, so removing it locally disturbs nobody. */
const PUSHED = `${REGISTRY}/hbt-engine/test`;

async function docker(...args: string[]): Promise<string> {
  const result = await runCommand("docker", args, { timeoutMs: 120_000 });
  if (result.code !== 0) {
    throw new Error(`docker ${args.join(" ")} failed (${result.code}): ${result.stderr.trim()}`);
  }
  return result.stdout.trim();
}

async function dockerQuiet(...args: string[]): Promise<void> {
  await runCommand("docker", args, { timeoutMs: 60_000 }).catch(() => {});
}

let imageReady: Promise<void> | null = null;

/** Builds hbt-engine-test:1 from CONTRACT_IMAGE_DOCKERFILE unless an identical one exists. */
function ensureContractImage(): Promise<void> {
  imageReady ??= (async () => {
    const current = await runCommand("docker", [
      "image",
      "inspect",
      "--format",
      "{{json .Config.Cmd}}",
      CONTRACT_IMAGE,
    ]);
    if (current.code === 0 && current.stdout.trim() === JSON.stringify(CONTRACT_IMAGE_CONFIG.Cmd)) {
      return;
    }
    const dir = await Deno.makeTempDir({ prefix: "hbt-engine-image-" });
    try {
      await Deno.copyFile("/bin/busybox", join(dir, "busybox")).catch((err) => {
        throw new Error("no /bin/busybox to build the test image; install busybox-static", {
          cause: err,
        });
      });
      await Deno.writeTextFile(join(dir, "Dockerfile"), CONTRACT_IMAGE_DOCKERFILE);
      const legacy = await runCommand("docker", ["build", "-q", "-t", CONTRACT_IMAGE, dir], {
        env: { ...Deno.env.toObject(), DOCKER_BUILDKIT: "0" },
        timeoutMs: 120_000,
      });
      if (legacy.code !== 0) await docker("build", "-q", "-t", CONTRACT_IMAGE, dir);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  })();
  return imageReady;
}

/** Removes every `hbt-engine-` container with its volumes, then volumes, networks and tags. */
async function cleanupDocker(): Promise<void> {
  const ids = (await docker("ps", "-aq", "--filter", `name=^/${PREFIX}`)).split("\n").filter(
    Boolean,
  );
  if (ids.length) await dockerQuiet("rm", "-f", "-v", ...ids);
  const volumes = (await docker("volume", "ls", "-q", "--filter", `name=${PREFIX}`)).split("\n")
    .filter(Boolean);
  for (const v of volumes.filter((v) => v.startsWith(PREFIX))) {
    await dockerQuiet("volume", "rm", "-f", v);
  }
  const networks = (await docker("network", "ls", "-q", "--filter", `name=${PREFIX}`)).split("\n")
    .filter(Boolean);
  if (networks.length) await dockerQuiet("network", "rm", ...networks);
  const tags = (await docker("images", "--format", "{{.Repository}}:{{.Tag}}"))
    .split("\n")
    .filter((t) => t.startsWith(`${PREFIX}tagged:`) || t.startsWith(`${PUSHED}:`));
  if (tags.length) await dockerQuiet("rmi", ...tags);
  // The builds publishBuild made that lost their tag on a re-pull (only ours carry the label).
  await dockerQuiet("image", "prune", "-f", "--filter", "label=hbt.build");
}

async function subject() {
  const engine = new SocketDockerEngine({ socketPath: SOCKET });
  // Fails here, loudly, when the daemon is not running.
  await engine.ping();
  await ensureContractImage();
  await cleanupDocker();
  return {
    engine,
    registry: {
      repository: PUSHED,
      auth: { username: REGISTRY_USER, password: REGISTRY_PASSWORD, serveraddress: REGISTRY },
      publish: publishBuild,
    },
    cleanup: async () => {
      engine.close();
      await cleanupDocker();
    },
  };
}

/**
 * Builds build `build` of the contract image and makes it `${PUSHED}:<tag>` in the registry
 * only: it is pushed under a throwaway tag (so no local tag moves) and the registry's manifest is
 * copied to `<tag>`, then the throwaway tag is dropped locally.
 */
async function publishBuild(tag: string, build: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hbt-engine-build-" });
  const config = await Deno.makeTempDir({ prefix: "hbt-engine-config-" });
  const scratch = `build-${build}-${crypto.randomUUID().slice(0, 8)}`;
  const scratchRef = `${PUSHED}:${scratch}`;
  try {
    await Deno.writeTextFile(
      join(dir, "Dockerfile"),
      `FROM ${CONTRACT_IMAGE}\nLABEL hbt.build="${build}"\n`,
    );
    const built = await runCommand("docker", ["build", "-q", "-t", scratchRef, dir], {
      env: { ...Deno.env.toObject(), DOCKER_BUILDKIT: "0" },
      timeoutMs: 120_000,
    });
    if (built.code !== 0) await docker("build", "-q", "-t", scratchRef, dir);
    await writeDockerConfig(config, {
      auths: { [REGISTRY]: { auth: btoa(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`) } },
    });
    await docker("--config", config, "push", scratchRef);
    const manifests = `http://${REGISTRY}/v2/${PUSHED.slice(REGISTRY.length + 1)}/manifests`;
    const authorization = `Basic ${btoa(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`)}`;
    const got = await fetch(`${manifests}/${scratch}`, {
      headers: {
        Authorization: authorization,
        Accept: "application/vnd.docker.distribution.manifest.v2+json",
      },
    });
    assert.equal(got.status, 200, `GET manifest ${scratch}`);
    const put = await fetch(`${manifests}/${tag}`, {
      method: "PUT",
      headers: {
        Authorization: authorization,
        "Content-Type": got.headers.get("content-type") ?? "",
      },
      body: await got.arrayBuffer(),
    });
    await put.body?.cancel();
    assert.equal(put.status, 201, `PUT manifest ${tag}`);
  } finally {
    await dockerQuiet("rmi", scratchRef);
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(config, { recursive: true });
  }
}

engineContract("real", subject);

function realTest(name: string, fn: (engine: SocketDockerEngine) => Promise<void>) {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const s = await subject();
      try {
        await fn(s.engine);
      } finally {
        await s.cleanup();
      }
    },
  });
}

Deno.test("a socket that does not exist gives a clear error naming the socket and a hint", async () => {
  const socketPath = "/tmp/hbt-engine-missing.sock";
  const engine = new SocketDockerEngine({ socketPath });
  try {
    await assert.rejects(engine.inspectContainer("anything"), (err: unknown) => {
      assert.ok(err instanceof DockerError);
      assert.equal(err.message, `cannot reach the Docker daemon at ${socketPath}`);
      assert.equal(err.hint, "systemctl start docker");
      assert.equal(err.exitCode, 4);
      return true;
    });
  } finally {
    engine.close();
  }
});

realTest("the negotiated API version is the daemon's, capped at 1.47", async (engine) => {
  const daemon = await docker("version", "--format", "{{.Server.APIVersion}}");
  const version = await engine.ping();
  const expected = Number(daemon.split(".")[1]) > 47 ? "1.47" : daemon;
  assert.equal(version.apiVersion, expected);
  assert.equal(version.engineVersion, await docker("version", "--format", "{{.Server.Version}}"));
});

realTest(
  "a daemon whose minimum API version is newer than ours is refused with a clear error",
  async () => {
    // The daemon's minimum here is 1.12; pretending we speak only up to 1.11 shows the refusal.
    const old = new SocketDockerEngine({ socketPath: SOCKET, maxApiVersion: "1.11" });
    try {
      await assert.rejects(old.inspectContainer("anything"), (err: unknown) => {
        assert.ok(err instanceof DockerError);
        assert.match(
          err.message,
          /requires API version 1\.\d+ or newer; hyperbot-ops speaks up to 1\.11/,
        );
        return true;
      });
    } finally {
      old.close();
    }
  },
);

realTest(
  "a container created on two networks is attached to both with its aliases and static IPs",
  async (engine) => {
    const netA = `${PREFIX}net-a`;
    const netB = `${PREFIX}net-b`;
    await docker("network", "create", "--subnet", "10.231.0.0/25", netA);
    await docker("network", "create", "--subnet", "10.231.0.128/25", netB);
    const id = await engine.createContainer(
      `${PREFIX}multi`,
      body({
        HostConfig: { NetworkMode: netA },
        NetworkingConfig: {
          EndpointsConfig: {
            [netA]: { Aliases: ["bot-a"], IPAMConfig: { IPv4Address: "10.231.0.10" } },
            [netB]: { Aliases: ["bot-b", "bot-b2"], IPAMConfig: { IPv4Address: "10.231.0.140" } },
          },
        },
      }),
    );
    const created = await engine.inspectContainer(id);
    assert.ok(created);
    const networks = created.inspect.NetworkSettings.Networks ?? {};
    assert.deepEqual(Object.keys(networks).sort(), [netA, netB]);
    assert.equal(networks[netA].IPAMConfig?.IPv4Address, "10.231.0.10");
    assert.equal(networks[netB].IPAMConfig?.IPv4Address, "10.231.0.140");
    assert.ok(networks[netA].Aliases?.includes("bot-a"));
    assert.ok(
      networks[netB].Aliases?.includes("bot-b") && networks[netB].Aliases?.includes("bot-b2"),
    );
    await engine.startContainer(id);
    const running = await engine.inspectContainer(id);
    const live = running!.inspect.NetworkSettings.Networks ?? {};
    assert.equal(live[netA].IPAddress, "10.231.0.10");
    assert.equal(live[netB].IPAddress, "10.231.0.140");
    assert.equal(running!.inspect.HostConfig.NetworkMode, netA);
  },
);

realTest("logs of a TTY container come back as written, without frame headers", async (engine) => {
  const id = await engine.createContainer(
    `${PREFIX}tty`,
    body({ Tty: true, Cmd: ["/bin/busybox", "sh", "-c", "echo tty-line; /bin/busybox sleep 30"] }),
  );
  await engine.startContainer(id);
  const logs = await eventually("the line is logged", async () => {
    const text = await engine.containerLogs(id, 5);
    return text.includes("tty-line") ? text : undefined;
  }, { timeoutMs: 15_000 });
  assert.equal(logs.replaceAll("\r", ""), "tty-line\n");
});

realTest("stopping with a timeout waits for the container's own shutdown", async (engine) => {
  const id = await engine.createContainer(`${PREFIX}stop`, body());
  await engine.startContainer(id);
  const started = Date.now();
  await engine.stopContainer(id, { timeoutSeconds: 20 });
  assert.ok(Date.now() - started < 15_000, "the TERM trap should end it well before the timeout");
  assert.equal((await engine.inspectContainer(id))?.exitCode, 0);
});

// ---- pulls from the private registry ----------------------------------------------------------

let pushed: Promise<void> | null = null;

/** Pushes the contract image to `${PUSHED}:1` once, logged in through a throwaway DOCKER_CONFIG. */
function pushContractImage(): Promise<void> {
  pushed ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "hbt-engine-push-" });
    try {
      await writeDockerConfig(dir, {
        auths: { [REGISTRY]: { auth: btoa(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`) } },
      });
      await docker("tag", CONTRACT_IMAGE, `${PUSHED}:1`);
      await docker("--config", dir, "push", `${PUSHED}:1`).catch((err) => {
        throw new Error(
          `cannot push to the private registry at ${REGISTRY}; run scripts/test-env.sh`,
          {
            cause: err,
          },
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  })();
  return pushed;
}

async function writeDockerConfig(dir: string, config: unknown): Promise<void> {
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(config, null, 2));
}

/** Runs `fn` with a DOCKER_CONFIG folder and a bin folder for credential helpers. */
async function withDockerConfig(
  fn: (dirs: { config: string; bin: string }) => Promise<void>,
): Promise<void> {
  const config = await Deno.makeTempDir({ prefix: "hbt-engine-config-" });
  const bin = await Deno.makeTempDir({ prefix: "hbt-engine-bin-" });
  try {
    await fn({ config, bin });
  } finally {
    await Deno.remove(config, { recursive: true });
    await Deno.remove(bin, { recursive: true });
  }
}

function storeFor(dirs: { config: string; bin: string }): DockerConfigCredentialStore {
  return new DockerConfigCredentialStore({
    env: {
      DOCKER_CONFIG: dirs.config,
      PATH: `${dirs.bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
      HOME: "/nonexistent",
    },
  });
}

async function pullWithStore(
  engine: SocketDockerEngine,
  store: DockerConfigCredentialStore,
  ref: string,
) {
  await pushContractImage();
  await dockerQuiet("rmi", ref);
  assert.equal(
    await engine.inspectImage(ref),
    null,
    "the image must not be present before the pull",
  );
  const auth = await store.lookup(REGISTRY);
  assert.ok(auth, "the store found no credentials");
  const statuses: string[] = [];
  await engine.pullImage(ref, { auth, onProgress: (p) => statuses.push(p.status) });
  const image = await engine.inspectImage(ref);
  assert.ok(image, "the image is present after the pull");
  assert.ok(
    statuses.some((s) => /Status: (Downloaded newer image|Image is up to date)/.test(s)),
    statuses.join("|"),
  );
}

realTest(
  "a pull from the private registry works with the auths entry of DOCKER_CONFIG",
  async (engine) => {
    await withDockerConfig(async (dirs) => {
      await writeDockerConfig(dirs.config, {
        auths: {
          [`http://${REGISTRY}/v1/`]: { auth: btoa(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`) },
        },
      });
      await pullWithStore(engine, storeFor(dirs), `${PUSHED}:1`);
    });
  },
);

realTest(
  "a pull from the private registry works with credentials from a credsStore helper",
  async (engine) => {
    await withDockerConfig(async (dirs) => {
      await writeDockerConfig(dirs.config, {
        auths: { [REGISTRY]: {} },
        credsStore: "hyperbottest",
      });
      const helper = join(dirs.bin, "docker-credential-hyperbottest");
      await Deno.writeTextFile(
        helper,
        `#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
if [ "$server" = "${REGISTRY}" ]; then
  printf '{"ServerURL":"%s","Username":"${REGISTRY_USER}","Secret":"${REGISTRY_PASSWORD}"}\\n' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi
`,
      );
      await Deno.chmod(helper, 0o755);
      const store = storeFor(dirs);
      assert.equal(await store.lookup("registry.example.com"), null);
      await pullWithStore(engine, store, `${PUSHED}:1`);
    });
  },
);

realTest(
  "a pull of a tag that does not exist fails with the registry's message",
  async (engine) => {
    await pushContractImage();
    const auth = { username: REGISTRY_USER, password: REGISTRY_PASSWORD, serveraddress: REGISTRY };
    await assert.rejects(engine.pullImage(`${PUSHED}:no-such-tag`, { auth }), (err: unknown) => {
      assert.ok(err instanceof DockerError);
      assert.match(err.message, /manifest unknown|not found/);
      assert.equal(err.object, `${PUSHED}:no-such-tag`);
      assert.equal(err.hint, "check the image name and tag");
      return true;
    });
  },
);

realTest(
  "a pull from the private registry without credentials fails with an auth error",
  async (engine) => {
    await pushContractImage();
    await dockerQuiet("rmi", `${PUSHED}:1`);
    await assert.rejects(engine.pullImage(`${PUSHED}:1`), (err: unknown) => {
      assert.ok(err instanceof DockerError);
      assert.match(err.message, /no basic auth credentials|unauthorized|authentication required/);
      assert.equal(err.hint, "log in to the registry with docker login");
      return true;
    });
  },
);

realTest("a pull with a wrong password fails with an auth error", async (engine) => {
  await pushContractImage();
  await dockerQuiet("rmi", `${PUSHED}:1`);
  const auth = { username: REGISTRY_USER, password: "wrong", serveraddress: REGISTRY };
  await assert.rejects(
    engine.pullImage(`${PUSHED}:1`, { auth }),
    /unauthorized|authentication required/,
  );
});
