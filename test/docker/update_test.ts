/**
 * `hyperbot-ops update` end to end: the CLI as a subprocess against the real Docker engine and
 * the private registry on 127.0.0.1:5000 (htpasswd auth, credentials from `docker login`).
 * Needs `bash scripts/test-env.sh`; fails loudly without it.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { ContainerInspect } from "../../lib/docker.ts";
import { runCli } from "../support/cli.ts";
import { docker, IMAGES, REPOSITORY, requireTestEnv, TEST_DOCKER_CONFIG } from "../support/env.ts";

const PREFIX = "hbt-upd";
const NET_A = `${PREFIX}-net-a`;
const NET_B = `${PREFIX}-net-b`;

await requireTestEnv();

interface Bot {
  name: string;
  base: string;
  args: string[];
  env: Record<string, string>;
}

let counter = 0;

async function mustDocker(...args: string[]): Promise<string> {
  const r = await docker(...args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout.trim();
}

async function inspect(name: string): Promise<ContainerInspect> {
  return JSON.parse(await mustDocker("inspect", name))[0];
}

async function exists(name: string): Promise<boolean> {
  return (await docker("inspect", name)).code === 0;
}

async function ensureNetworks() {
  for (const [net, subnet] of [[NET_A, "10.231.1.0/24"], [NET_B, "10.231.2.0/24"]]) {
    if ((await docker("network", "inspect", net)).code !== 0) {
      await mustDocker("network", "create", "--subnet", subnet, net);
    }
  }
}

/** Starts a bot container with a bit of every setting the update must keep. */
async function startBot(
  image: string,
  extra: string[] = [],
  opts: { start?: boolean } = {},
): Promise<Bot> {
  const name = `${PREFIX}-${Deno.pid}-${++counter}`;
  const base = await Deno.makeTempDir({ prefix: `${name}-` });
  await Deno.mkdir(join(base, "data"), { recursive: true });
  await ensureNetworks();
  await docker("rm", "-f", name, `${name}-previous`, `${name}-updating`);
  const create = [
    "create",
    "--name",
    name,
    "--hostname",
    "tradingbot",
    "-e",
    "BOT_MODE=live",
    "-e",
    "APP_VERSION=pinned-by-operator",
    "--label",
    "operator.label=keep-me",
    "-v",
    `${base}/data:/app/data`,
    "-v",
    `${name}-named:/named`,
    "-v",
    "/cache",
    "--network",
    NET_A,
    "--network-alias",
    "bot-alias",
    "--ip",
    `10.231.1.${10 + counter}`,
    "--restart",
    "unless-stopped",
    "--memory",
    "64m",
    "--cpu-shares",
    "512",
    "--stop-timeout",
    "7",
    "--stop-signal",
    "SIGTERM",
    "--add-host",
    "exchange.local:10.9.9.9",
    "--tmpfs",
    "/run/scratch",
    "--cap-drop",
    "NET_RAW",
    "--ulimit",
    "nofile=1024:2048",
    "--workdir",
    "/app/work",
    ...extra,
    image,
  ];
  await mustDocker(...create);
  await mustDocker("network", "connect", "--alias", "bot-b", NET_B, name);
  if (opts.start !== false) await mustDocker("start", name);
  const args = [
    "--container",
    name,
    "--base-dir",
    base,
    "--state-dir",
    join(base, "state"),
    "--stable-seconds",
    "1",
    "--health-timeout",
    "15",
  ];
  return { name, base, args, env: { DOCKER_CONFIG: TEST_DOCKER_CONFIG } };
}

async function removeBot(bot: Bot) {
  // -v: the anonymous volumes of the test containers go too.
  await docker("rm", "-f", "-v", bot.name, `${bot.name}-previous`, `${bot.name}-updating`);
  await docker("volume", "rm", `${bot.name}-named`);
  await Deno.remove(bot.base, { recursive: true }).catch(() => {});
}

async function writeData(bot: Bot) {
  await mustDocker(
    "exec",
    bot.name,
    "sh",
    "-c",
    "echo named-data > /named/keep && echo anon-data > /cache/keep && echo image-volume > /data/keep && echo bind-data > /app/data/keep",
  );
}

async function assertDataKept(bot: Bot) {
  const out = await mustDocker(
    "exec",
    bot.name,
    "cat",
    "/named/keep",
    "/cache/keep",
    "/data/keep",
    "/app/data/keep",
  );
  assert.equal(out, "named-data\nanon-data\nimage-volume\nbind-data");
}

async function statusFile(bot: Bot) {
  return JSON.parse(await Deno.readTextFile(join(bot.base, "data", ".update_status.json")));
}

function update(bot: Bot, ...args: string[]) {
  return runCli(["update", ...args, ...bot.args], { env: bot.env });
}

/**
 * Like update(), with settings that win over the bot's (a flag written later wins). The crash
 * image exits about 1 s after its start: verifying it for startBot's 1 s would be a race, so
 * the tests that deploy it verify for 5 s.
 */
function updateWith(bot: Bot, settings: Record<string, string>, ...args: string[]) {
  const extra = Object.entries(settings).flatMap(([flag, value]) => [flag, value]);
  return runCli(["update", ...args, ...bot.args, ...extra], { env: bot.env });
}

/** How long the update's verify step took, in ms, from the status file. */
async function verifyMs(bot: Bot): Promise<number> {
  const step = (await statusFile(bot)).steps.find((s: { name: string }) => s.name === "verify");
  assert.ok(step?.finishedAt, "the status file has a finished verify step");
  return Date.parse(step.finishedAt) - Date.parse(step.startedAt);
}

/** The settings an operator gave the container, which an update must keep. */
function settings(c: ContainerInspect) {
  const h = c.HostConfig as Record<string, unknown>;
  const nets = c.NetworkSettings.Networks ?? {};
  return {
    hostname: c.Config.Hostname,
    env: (c.Config.Env ?? []).filter((e) => /^(BOT_MODE|APP_VERSION)=/.test(e)).sort(),
    label: c.Config.Labels?.["operator.label"],
    workdir: c.Config.WorkingDir,
    stopTimeout: c.Config.StopTimeout,
    stopSignal: c.Config.StopSignal,
    binds: h.Binds,
    restart: h.RestartPolicy,
    memory: h.Memory,
    cpuShares: h.CpuShares,
    extraHosts: h.ExtraHosts,
    tmpfs: h.Tmpfs,
    capDrop: h.CapDrop,
    ulimits: h.Ulimits,
    portBindings: h.PortBindings,
    networks: Object.fromEntries(
      Object.entries(nets).map(([n, ep]) => [
        n,
        {
          aliases: (ep.Aliases ?? []).filter((a) => a !== c.Id.slice(0, 12)).sort(),
          ip: ep.IPAMConfig?.IPv4Address,
        },
      ]),
    ),
    volumes: (c.Mounts ?? []).filter((m) => m.Type === "volume").map((m) =>
      `${m.Name}:${m.Destination}`
    ).sort(),
  };
}

Deno.test("update v1 to v2 keeps every setting and the data in every volume", async () => {
  const bot = await startBot(IMAGES.v1);
  try {
    await writeData(bot);
    const before = await inspect(bot.name);
    const r = await update(bot, IMAGES.v2);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /updated/);
    const after = await inspect(bot.name);
    assert.notEqual(after.Id, before.Id);
    assert.equal(after.Config.Image, IMAGES.v2);
    assert.ok(after.State.Running);
    assert.deepEqual(settings(after), settings(before));
    const env = after.Config.Env ?? [];
    assert.ok(env.includes("IMAGE_ONLY_V2=yes"), "the new image's env applies");
    assert.ok(!env.includes("IMAGE_ONLY_V1=yes"), "the old image's env does not carry over");
    assert.equal(after.Config.Labels?.["hyperbot.test.image"], "v2");
    await assertDataKept(bot);
    assert.equal(await exists(`${bot.name}-previous`), false, "the old container is removed");
    const status = await statusFile(bot);
    assert.equal(status.state, "succeeded");
    assert.equal(status.image, IMAGES.v2);
    assert.equal(status.previousImage, IMAGES.v1);
    assert.equal(status.imageId, after.Image);
    const log = await Deno.readTextFile(join(bot.base, "logs", "update.log"));
    assert.match(log, /step=verify/);
    const journal = await Deno.stat(join(bot.base, "state", "journal.json")).catch(() => null);
    assert.equal(journal, null, "the journal is clear");
  } finally {
    await removeBot(bot);
  }
});

Deno.test("update to the image already running is unchanged and restarts nothing", async () => {
  const bot = await startBot(IMAGES.v1);
  try {
    const before = await inspect(bot.name);
    const r = await update(bot);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /unchanged/);
    const after = await inspect(bot.name);
    assert.equal(after.Id, before.Id);
    assert.equal(after.State.StartedAt, before.State.StartedAt);
    assert.equal((await statusFile(bot)).state, "unchanged");
  } finally {
    await removeBot(bot);
  }
});

Deno.test("update --force recreates the container on the same image and keeps its settings", async () => {
  const bot = await startBot(IMAGES.v1);
  try {
    await writeData(bot);
    const before = await inspect(bot.name);
    const r = await update(bot, "--force", "--json");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).outcome, "updated");
    const after = await inspect(bot.name);
    assert.notEqual(after.Id, before.Id);
    assert.deepEqual(settings(after), settings(before));
    await assertDataKept(bot);
  } finally {
    await removeBot(bot);
  }
});

Deno.test("update --rollback goes back to the image that ran before", async () => {
  const bot = await startBot(IMAGES.v1);
  try {
    const v1 = (await inspect(bot.name)).Image;
    assert.equal((await update(bot, IMAGES.v2)).code, 0);
    const r = await update(bot, "--rollback");
    assert.equal(r.code, 0, r.stderr);
    const after = await inspect(bot.name);
    assert.equal(after.Image, v1);
    assert.equal(after.Config.Image, IMAGES.v1);
    assert.ok(after.State.Running);
  } finally {
    await removeBot(bot);
  }
});

for (
  const [why, image, extra] of [
    ["the new container exits at once", IMAGES.crash, []],
    ["the new container crash-loops", IMAGES.crash, ["--restart", "always"]],
    ["the new container's HEALTHCHECK fails", IMAGES.unhealthy, []],
  ] as [string, string, string[]][]
) {
  Deno.test(`update rolls back to v1 with the data intact when ${why}`, async () => {
    const bot = await startBot(IMAGES.v1, extra);
    try {
      await writeData(bot);
      const before = await inspect(bot.name);
      const r = await updateWith(bot, { "--stable-seconds": "5" }, image);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout, /rolled_back/);
      const after = await inspect(bot.name);
      assert.equal(after.Id, before.Id, "the old container is back");
      assert.ok(after.State.Running);
      assert.equal(after.Config.Image, IMAGES.v1);
      await assertDataKept(bot);
      assert.equal(await exists(`${bot.name}-updating`), false);
      assert.equal(await exists(`${bot.name}-previous`), false);
      const status = await statusFile(bot);
      assert.equal(status.state, "rolled_back");
      const verify = status.steps.find((s: { name: string }) => s.name === "verify");
      assert.equal(verify?.ok, false, "a failed verification is a failed verify step");
      assert.equal(verify?.detail, status.error);
      assert.match(r.stdout, /verify\(failed\) → rollback/);
      const log = await Deno.readTextFile(join(bot.base, "logs", "update.log"));
      assert.match(log, /output of the new container/);
      // The code it died with, as the rollback's reason says, not the one after a stop/restart.
      const died = /exit(?:ed with)? code (\d+)/.exec(status.error ?? "")?.[1];
      if (died) assert.match(log, new RegExp(`output of the new container.*exitCode=${died}\\b`));
    } finally {
      await removeBot(bot);
    }
  });
}

Deno.test("an image with a HEALTHCHECK must be healthy and then up for stableSeconds", async () => {
  const bot = await startBot(IMAGES["healthy-v1"]);
  try {
    // healthy-v2 is healthy about 1 s after its start: the update still waits out the 4 s.
    const r = await updateWith(bot, { "--stable-seconds": "4" }, IMAGES["healthy-v2"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const after = await inspect(bot.name);
    assert.equal(after.Config.Image, IMAGES["healthy-v2"]);
    assert.equal(after.State.Health?.Status, "healthy");
    const ms = await verifyMs(bot);
    assert.ok(ms >= 4_000, `verified after ${ms} ms, inside the stable window`);
  } finally {
    await removeBot(bot);
  }
});

Deno.test("an image that is 'starting' for a while is waited for until healthy", async () => {
  const bot = await startBot(IMAGES.v1);
  try {
    // slow-healthy: starting for about 3 s, then healthy; stableSeconds alone (1) is shorter.
    const r = await updateWith(bot, { "--health-timeout": "60" }, IMAGES["slow-healthy"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal((await inspect(bot.name)).State.Health?.Status, "healthy");
    const ms = await verifyMs(bot);
    assert.ok(ms >= 2_500, `verified after ${ms} ms, before the image could be healthy`);
  } finally {
    await removeBot(bot);
  }
});

Deno.test("an image not healthy within healthTimeoutSeconds is rolled back", async () => {
  const bot = await startBot(IMAGES.v1);
  try {
    const before = await inspect(bot.name);
    const r = await updateWith(bot, { "--health-timeout": "1" }, IMAGES["slow-healthy"]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /rolled_back/);
    assert.match((await statusFile(bot)).error, /did not become healthy within 1s/);
    assert.equal((await inspect(bot.name)).Id, before.Id);
  } finally {
    await removeBot(bot);
  }
});

Deno.test("update rolls back when the new container cannot start because its port is taken", async () => {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const bot = await startBot(IMAGES.v1, ["-p", `127.0.0.1:${port}:8080`], { start: false });
  const squatter = Deno.listen({ hostname: "127.0.0.1", port });
  try {
    const before = await inspect(bot.name);
    const r = await update(bot, IMAGES.v2);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /rolled_back/);
    const after = await inspect(bot.name);
    assert.equal(after.Id, before.Id);
    assert.equal(after.Config.Image, IMAGES.v1);
    assert.equal(after.State.Running, false, "a bot that was stopped stays stopped");
    assert.equal(await exists(`${bot.name}-updating`), false);
  } finally {
    squatter.close();
    await removeBot(bot);
  }
});

Deno.test("rejected references exit 2 and change nothing", async () => {
  const bot = await startBot(IMAGES.v1);
  try {
    const before = await inspect(bot.name);
    for (
      const ref of [
        "bad ref",
        "127.0.0.1:5000/Hyperbot/app:v2",
        "app:v2;reboot",
        "127.0.0.1:5000/other/app:v2",
      ]
    ) {
      const r = await update(bot, ref);
      assert.equal(r.code, 2, `${ref}: ${r.stderr}`);
      assert.match(r.stderr, /^error: /m);
    }
    const after = await inspect(bot.name);
    assert.equal(after.Id, before.Id);
    assert.equal(after.State.StartedAt, before.State.StartedAt);
    assert.equal(
      await Deno.stat(join(bot.base, "data", ".update_status.json")).catch(() => null),
      null,
    );
  } finally {
    await removeBot(bot);
  }
});

Deno.test("a pull needs the docker login credentials of the private registry", async () => {
  const bot = await startBot(IMAGES.v1);
  const empty = await Deno.makeTempDir({ prefix: "hbt-upd-nocreds-" });
  try {
    const r = await runCli(["update", IMAGES.v2, ...bot.args], { env: { DOCKER_CONFIG: empty } });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /failed/);
    assert.match(r.stdout, /auth|credentials|unauthorized/i);
    assert.equal((await inspect(bot.name)).Config.Image, IMAGES.v1, "the bot is untouched");
    const ok = await update(bot, IMAGES.v2);
    assert.equal(ok.code, 0, ok.stderr);
  } finally {
    await Deno.remove(empty, { recursive: true });
    await removeBot(bot);
  }
});

Deno.test("a tag the registry does not have fails with the bot untouched", async () => {
  const bot = await startBot(IMAGES.v1);
  try {
    const before = await inspect(bot.name);
    const r = await update(bot, `${REPOSITORY}:no-such-tag`);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /not found|unknown/i);
    assert.equal((await inspect(bot.name)).Id, before.Id);
    assert.equal((await statusFile(bot)).state, "failed");
  } finally {
    await removeBot(bot);
  }
});

Deno.test("update --no-pull deploys an image built on this host, which the registry does not have", async () => {
  const bot = await startBot(IMAGES.v1);
  const local = `${REPOSITORY}:local-${bot.name}`;
  try {
    await mustDocker("tag", IMAGES.v2, local);
    const refused = await update(bot, "--no-pull", `${REPOSITORY}:not-here-${bot.name}`);
    assert.equal(refused.code, 2, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /not on this host \(--no-pull\)/);
    const r = await update(bot, "--no-pull", local);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const after = await inspect(bot.name);
    assert.equal(after.Config.Image, local);
    assert.equal(after.State.Running, true);
    const status = await statusFile(bot);
    assert.equal(status.state, "succeeded");
    assert.ok(!status.steps.some((s: { name: string }) => s.name === "pull"));
  } finally {
    await removeBot(bot);
    await docker("rmi", local);
  }
});

Deno.test("an unreachable Docker daemon is a clear error and exit 4", async () => {
  const r = await runCli([
    "update",
    "--docker-host",
    "unix:///nonexistent/docker.sock",
    "--base-dir",
    await Deno.makeTempDir({ prefix: "hbt-upd-nodocker-" }),
    "--state-dir",
    await Deno.makeTempDir({ prefix: "hbt-upd-nodocker-state-" }),
  ]);
  assert.equal(r.code, 4, r.stdout + r.stderr);
  assert.match(r.stderr, /cannot reach the Docker daemon/);
});

Deno.test("two updates at once: one runs, the other says who holds the lock", async () => {
  const bot = await startBot(IMAGES.v1);
  try {
    // A long verification keeps the first update inside the lock while the second starts.
    const slow = () =>
      runCli(["update", IMAGES.v2, ...bot.args, "--stable-seconds", "4"], { env: bot.env });
    const [a, b] = await Promise.all([slow(), slow()]);
    const codes = [a.code, b.code].sort();
    assert.deepEqual(codes, [0, 5], a.stderr + b.stderr);
    const loser = a.code === 5 ? a : b;
    assert.match(loser.stderr, /another update is in progress: held by pid \d+/);
    assert.equal((await inspect(bot.name)).Config.Image, IMAGES.v2);
  } finally {
    await removeBot(bot);
  }
});

Deno.test("a docker compose container is updated and the status warns about the compose file", async () => {
  const bot = await startBot(IMAGES.v1, [
    "--label",
    "com.docker.compose.project=trading",
    "--label",
    "com.docker.compose.service=app",
  ]);
  try {
    const r = await update(bot, IMAGES.v2);
    assert.equal(r.code, 0, r.stderr);
    const status = await statusFile(bot);
    assert.match(status.warnings.join("\n"), /compose file/);
    assert.equal(
      (await inspect(bot.name)).Config.Labels?.["com.docker.compose.project"],
      "trading",
    );
  } finally {
    await removeBot(bot);
  }
});
