/**
 * `hyperbot-ops watch` as a subprocess against the real Docker engine and the private registry
 * of scripts/test-env.sh (images 127.0.0.1:5000/hyperbot/app:{v1,v2,…}, login in
 * /var/lib/hyperbot-test/docker-config). Without them these tests fail; they never skip.
 *
 * Each test has its own temp base dir and container `hbt-watch-<name>-<rand>`, and removes
 * both. keepImages is high so that no test removes the shared test images.
 *
 * The Docker daemon restart test runs only with HYPERBOT_TEST_RESTART_DOCKER=1, which
 * `bash scripts/test.sh` (the README's command, and CI's) sets unless it is 0; a bare
 * `deno test` leaves it out, since the daemon may be shared. Skipped, it is named in
 * test.sh's summary line. It runs last.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type Running, startCli } from "../support/cli.ts";
import { eventually, pathExists as exists, sleep } from "../support/wait.ts";
import { runCommand } from "../../lib/adapters/run_command.ts";
import { STEPS } from "../../lib/update/report.ts";
import type { StatusFile } from "../../lib/update/report.ts";
import type { Heartbeat } from "../../lib/watch/heartbeat.ts";

const REGISTRY = Deno.env.get("HBT_REGISTRY") ?? "127.0.0.1:5000";
const REPO = `${REGISTRY}/hyperbot/app`;
const DOCKER_CONFIG = Deno.env.get("HBT_DOCKER_CONFIG") ?? "/var/lib/hyperbot-test/docker-config";
const DOCKERD_LOG = "/var/log/hyperbot-test-dockerd.log";
const opts = { sanitizeOps: false, sanitizeResources: false };

async function docker(...args: string[]): Promise<string> {
  const result = await runCommand("docker", args, { timeoutMs: 120_000 });
  if (result.code !== 0) {
    throw new Error(`docker ${args.join(" ")} failed (${result.code}): ${result.stderr.trim()}`);
  }
  return result.stdout.trim();
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch {
    return null;
  }
}

interface Bot {
  name: string;
  base: string;
  dataDir: string;
  stateDir: string;
  logDir: string;
  trigger: string;
  statusPath: string;
  historyPath: string;
  args: string[];
  cleanup(): Promise<void>;
}

/** A bot container on `image` with its own folders; the data folder is mounted at /shared. */
async function startBot(label: string, image = `${REPO}:v1`, runArgs: string[] = []): Promise<Bot> {
  const name = `hbt-watch-${label}-${crypto.randomUUID().slice(0, 6)}`;
  const base = await Deno.makeTempDir({ prefix: `${name}-` });
  const dataDir = join(base, "data");
  const stateDir = join(base, "state");
  const logDir = join(base, "logs");
  await Deno.mkdir(dataDir);
  await Deno.writeTextFile(join(base, "config.json"), "{}\n");
  await docker("run", "-d", "--name", name, "-v", `${dataDir}:/shared`, ...runArgs, image);
  return {
    name,
    base,
    dataDir,
    stateDir,
    logDir,
    trigger: join(dataDir, ".update_trigger"),
    statusPath: join(dataDir, ".update_status.json"),
    historyPath: join(dataDir, ".update_history.jsonl"),
    args: [
      "watch",
      "--config",
      join(base, "config.json"),
      "--base-dir",
      base,
      "--state-dir",
      stateDir,
      "--container",
      name,
      "--allowed-image",
      REPO,
      "--stable-seconds",
      "1",
      "--health-timeout",
      "10",
      "--keep-images",
      "50",
    ],
    async cleanup() {
      for (const n of [name, `${name}-previous`, `${name}-updating`]) {
        await runCommand("docker", ["rm", "-f", n], { timeoutMs: 60_000 }).catch(() => {});
      }
      await Deno.remove(base, { recursive: true }).catch(() => {});
    },
  };
}

type Watch = Running;

/** Starts `watch` for the bot; if it cannot even be spawned, removes the bot and throws. */
async function startWatch(bot: Bot, env: Record<string, string> = {}): Promise<Watch> {
  try {
    return startCli(bot.args, { env: { DOCKER_CONFIG, ...env } });
  } catch (err) {
    await bot.cleanup();
    throw err;
  }
}

/** Waits until the watcher has recovered and is idle (its heartbeat says so). */
async function ready(bot: Bot, watch: Watch): Promise<Heartbeat> {
  return await eventually("watch ready", async () => {
    const hb = await readJson<Heartbeat>(join(bot.stateDir, "heartbeat.json"));
    return hb && hb.pid === watch.child.pid && hb.state === "idle" ? hb : null;
  }, { timeoutMs: 30_000, describe: () => seen(bot, watch) });
}

/** What a timed-out wait prints: the status file and the watcher's last output. */
async function seen(bot: Bot, watch: Watch): Promise<string> {
  const statusText = await Deno.readTextFile(bot.statusPath).catch((e) => `(${e})`);
  return `status file: ${statusText.trim()}\nwatch output (tail):\n${watch.output().slice(-4_000)}`;
}

async function status(bot: Bot): Promise<StatusFile | null> {
  return await readJson<StatusFile>(bot.statusPath);
}

async function finalStatus(bot: Bot, previousId: string | null, watch: Watch): Promise<StatusFile> {
  return await eventually("a final status", async () => {
    const s = await status(bot);
    return s && s.id !== previousId && s.finishedAt !== null ? s : null;
  }, { describe: () => seen(bot, watch) });
}

/** The history lines; none when there is no file yet. A line that is not JSON fails the test. */
async function history(bot: Bot): Promise<StatusFile[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(bot.historyPath);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

async function inspect(
  name: string,
): Promise<{ id: string; image: string; running: boolean } | null> {
  const r = await runCommand("docker", [
    "inspect",
    "-f",
    "{{.Id}} {{.Config.Image}} {{.State.Running}}",
    name,
  ]);
  if (r.code !== 0) return null;
  const [id, image, running] = r.stdout.trim().split(" ");
  return { id, image, running: running === "true" };
}

async function claimedEntries(bot: Bot): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(join(bot.stateDir, "claimed"))) names.push(e.name);
  } catch {
    // No claim folder yet.
  }
  return names;
}

/** Writes a trigger the way the bot does: in place, with a newline. */
async function writeTrigger(bot: Bot, text: string) {
  await Deno.writeTextFile(bot.trigger, text);
}

Deno.test(
  "a plain trigger is claimed and updates the container, the status file and history",
  opts,
  async () => {
    const bot = await startBot("plain");
    const watch = await startWatch(bot);
    try {
      await ready(bot, watch);
      const before = await inspect(bot.name);
      const t0 = performance.now();
      await writeTrigger(bot, `${REPO}:v2\n`);
      // Poll every millisecond: the claim is the trigger leaving the data folder.
      while (await exists(bot.trigger)) {
        assert.ok(performance.now() - t0 < 5_000, `not claimed\n${watch.output()}`);
        await sleep(1);
      }
      // The 100 ms target is measured by bench/ (p50/p99 over 200 triggers), not here; the
      // event path itself is tested in test/unit/watch_test.ts.
      const latency = performance.now() - t0;
      console.log(`detection -> claim: ${latency.toFixed(1)} ms`);

      const s = await finalStatus(bot, null, watch);
      assert.equal(s.state, "succeeded", JSON.stringify(s));
      assert.equal(s.image, `${REPO}:v2`);
      assert.equal(s.previousImage, `${REPO}:v1`);
      const after = await inspect(bot.name);
      assert.equal(after?.image, `${REPO}:v2`);
      assert.equal(after?.running, true);
      assert.notEqual(after?.id, before?.id);
      assert.equal(await inspect(`${bot.name}-previous`), null);
      const h = await history(bot);
      assert.equal(h.length, 1);
      assert.equal(h[0].state, "succeeded");
      assert.equal((await Deno.stat(bot.statusPath)).mode! & 0o777, 0o644);
      assert.deepEqual(await claimedEntries(bot), []);
      assert.equal(await exists(join(bot.stateDir, "journal.json")), false);
      assert.equal((await watch.stop()).code, 0);
      const monitor = await Deno.readTextFile(join(bot.logDir, "monitor.log"));
      assert.match(monitor, /update requested by trigger/);
      assert.match(monitor, /update updated/);
      assert.match(await Deno.readTextFile(join(bot.logDir, "update.log")), /step verify/);
    } finally {
      await watch.stop();
      await bot.cleanup();
    }
  },
);

Deno.test("a JSON trigger echoes its id and force recreates on the same image", opts, async () => {
  const bot = await startBot("json");
  const watch = await startWatch(bot);
  try {
    await ready(bot, watch);
    const before = await inspect(bot.name);
    await writeTrigger(bot, JSON.stringify({ image: `${REPO}:v1`, id: "req-123", force: true }));
    const s = await finalStatus(bot, null, watch);
    assert.equal(s.state, "succeeded", JSON.stringify(s));
    assert.equal(s.requestId, "req-123");
    const after = await inspect(bot.name);
    assert.equal(after?.image, `${REPO}:v1`);
    assert.notEqual(after?.id, before?.id, "force recreated the container");

    await writeTrigger(bot, JSON.stringify({ image: `${REPO}:v1`, id: "req-124" }));
    const s2 = await finalStatus(bot, s.id, watch);
    assert.equal(s2.state, "unchanged");
    assert.equal(s2.requestId, "req-124");
    assert.equal((await inspect(bot.name))?.id, after?.id);
  } finally {
    await watch.stop();
    await bot.cleanup();
  }
});

Deno.test(
  "a trigger written while the watcher was down runs as soon as it starts",
  opts,
  async () => {
    const bot = await startBot("atstart");
    await writeTrigger(bot, `${REPO}:v2\n`);
    const watch = await startWatch(bot);
    try {
      const s = await finalStatus(bot, null, watch);
      assert.equal(s.state, "succeeded", JSON.stringify(s));
      assert.equal((await inspect(bot.name))?.image, `${REPO}:v2`);
    } finally {
      await watch.stop();
      await bot.cleanup();
    }
  },
);

Deno.test("a burst of writes leads to one update of the last request", opts, async () => {
  const bot = await startBot("burst");
  const watch = await startWatch(bot);
  try {
    await ready(bot, watch);
    // A burst is writes closer together than the watcher's debounce. On a loaded machine this
    // test's own writes can be further apart than that, so the watcher is frozen while they
    // happen: its inotify events queue up and it wakes to the whole burst at once.
    const tags = ["crash", "unhealthy", "v1", "healthy-v2", "crash", "v2"];
    Deno.kill(watch.child.pid, "SIGSTOP");
    try {
      for (let i = 0; i < 30; i++) {
        Deno.writeTextFileSync(bot.trigger, `${REPO}:${tags[i % tags.length]}\n`);
      }
    } finally {
      Deno.kill(watch.child.pid, "SIGCONT");
    }
    const s = await finalStatus(bot, null, watch);
    assert.equal(s.state, "succeeded", JSON.stringify(s));
    assert.equal(s.image, `${REPO}:v2`);
    await sleep(1_000);
    const h = await history(bot);
    assert.deepEqual(h.map((x) => `${x.state} ${x.image}`), [`succeeded ${REPO}:v2`]);
  } finally {
    await watch.stop();
    await bot.cleanup();
  }
});

Deno.test(
  "hostile triggers are rejected with the reason and touch nothing else",
  opts,
  async () => {
    const bot = await startBot("hostile");
    const hostFile = join(bot.base, "host-secret");
    await Deno.writeTextFile(hostFile, "root:x:0:0:do not touch\n");
    const watch = await startWatch(bot);
    try {
      await ready(bot, watch);
      const before = await inspect(bot.name);
      const cases: [string, () => Promise<void>, RegExp][] = [
        [
          "symlink to a host file",
          () => Deno.symlink(hostFile, bot.trigger),
          /symlink, not a regular file/,
        ],
        ["FIFO", async () => {
          const r = await runCommand("mkfifo", [bot.trigger]);
          assert.equal(r.code, 0, r.stderr);
        }, /fifo, not a regular file/],
        ["directory", async () => {
          await Deno.mkdir(bot.trigger);
          await Deno.symlink(hostFile, join(bot.trigger, "link"));
        }, /directory, not a regular file/],
        [
          "10 MB file",
          () => Deno.writeFile(bot.trigger, new Uint8Array(10 * 1024 * 1024).fill(0x61)),
          /larger than 4096 bytes/,
        ],
        ["binary junk", () =>
          Deno.writeFile(
            bot.trigger,
            crypto.getRandomValues(new Uint8Array(512)).map((b) => b | 0x80),
          ), /not valid UTF-8/],
        [
          "shell metacharacters",
          () => writeTrigger(bot, `${REPO}:v2; rm -rf / $(reboot) \`id\`\n`),
          /invalid image reference/,
        ],
        ["two images on two lines", () => writeTrigger(bot, `${REPO}:v2\n${REPO}:v1\n`), /2 lines/],
        [
          "a repository not allowed",
          () => writeTrigger(bot, `${REGISTRY}/evil/app:v2\n`),
          /not in allowedImages/,
        ],
        ["empty file", () => writeTrigger(bot, ""), /it is empty/],
        ["bad JSON", () => writeTrigger(bot, `{"image": "${REPO}:v2",`), /not valid JSON/],
        [
          "unknown JSON keys",
          () => writeTrigger(bot, JSON.stringify({ image: `${REPO}:v2`, cmd: "sh" })),
          /unknown JSON key 'cmd'/,
        ],
      ];
      let last: string | null = null;
      for (const [label, write, reason] of cases) {
        await write();
        const s = await finalStatus(bot, last, watch);
        last = s.id;
        assert.equal(s.state, "rejected", `${label}: ${JSON.stringify(s)}`);
        assert.match(s.error ?? "", reason, label);
        await eventually(
          `${label}: the trigger removed`,
          async () => !(await exists(bot.trigger)),
          { timeoutMs: 5_000 },
        );
      }
      assert.equal(await Deno.readTextFile(hostFile), "root:x:0:0:do not touch\n");
      const after = await inspect(bot.name);
      assert.deepEqual(after, before, "the container is untouched");
      assert.deepEqual(await claimedEntries(bot), []);
      assert.equal((await history(bot)).length, cases.length);

      // A valid trigger still works after all that.
      await writeTrigger(bot, `${REPO}:v2\n`);
      const s = await finalStatus(bot, last, watch);
      assert.equal(s.state, "succeeded");
      assert.equal((await watch.stop()).code, 0);
      const monitor = await Deno.readTextFile(join(bot.logDir, "monitor.log"));
      assert.equal(monitor.match(/trigger rejected/g)?.length, cases.length);
    } finally {
      await watch.stop();
      await bot.cleanup();
    }
  },
);

Deno.test("a flood of triggers neither crashes the watcher nor fills the log", opts, async () => {
  const bot = await startBot("flood");
  const watch = await startWatch(bot);
  try {
    await ready(bot, watch);
    let n = 0;
    const deadline = Date.now() + 2_000;
    while (Date.now() < deadline) {
      Deno.writeTextFileSync(bot.trigger, `junk ${n++} $(id)\n`);
      if (n % 50 === 0) await sleep(0);
    }
    console.log(`flood: ${n} writes in 2 s`);
    await eventually("the last one handled", async () => !(await exists(bot.trigger)), {
      timeoutMs: 10_000,
    });
    const flooded = await history(bot);
    assert.ok(flooded.length >= 1 && flooded.length <= 20, `${flooded.length} history lines`);
    assert.ok(flooded.every((h) => h.state === "rejected"), "each one told as rejected");
    assert.equal((await status(bot))?.state, "rejected");
    // Still alive and still acting.
    await writeTrigger(bot, `${REPO}:v2\n`);
    await eventually("the valid trigger after the flood", async () => {
      const s = await status(bot);
      return s?.state === "succeeded" ? s : null;
    });
    assert.equal((await watch.stop()).code, 0);
    const monitor = await Deno.readTextFile(join(bot.logDir, "monitor.log"));
    const rejectedLines = monitor.match(/trigger rejected/g)?.length ?? 0;
    assert.ok(rejectedLines >= 1 && rejectedLines <= 20, `${rejectedLines} rejection lines`);
    assert.ok((await Deno.stat(join(bot.logDir, "monitor.log"))).size < 64 * 1024);
  } finally {
    await watch.stop();
    await bot.cleanup();
  }
});

Deno.test("SIGTERM during an update lets it finish before exit", opts, async () => {
  const bot = await startBot("sigterm");
  // A verification window long enough that a loaded machine cannot miss it.
  const args = [...bot.args];
  const at = args.indexOf("--stable-seconds");
  assert.ok(at >= 0, "startBot passes --stable-seconds");
  args[at + 1] = "5";
  const watch = await startWatch({ ...bot, args });
  try {
    await ready(bot, watch);
    await writeTrigger(bot, `${REPO}:v2\n`);
    const inProgress = ["pulling", "creating", "stopping", "starting", "verifying"];
    const during = await eventually(
      "the update in progress",
      async () => {
        const s = await status(bot);
        return s && inProgress.includes(s.state) ? s : null;
      },
      { timeoutMs: 30_000, describe: () => seen(bot, watch) },
    );
    const { code } = await watch.stop();
    assert.equal(code, 0, `exit code; SIGTERM came at ${during.state}\n${watch.output()}`);
    const s = await status(bot);
    assert.equal(s?.state, "succeeded", `SIGTERM came at ${during.state}: ${JSON.stringify(s)}`);
    assert.equal(s?.id, during.id, "the same update finished");
    assert.equal((await inspect(bot.name))?.image, `${REPO}:v2`);
    assert.equal(await exists(join(bot.stateDir, "journal.json")), false);
    const hb = await readJson<Heartbeat>(join(bot.stateDir, "heartbeat.json"));
    assert.equal(hb?.state, "stopped");
  } finally {
    await watch.stop();
    await bot.cleanup();
  }
});

for (const step of STEPS) {
  Deno.test(
    `kill -9 at step ${step}, then a restart of watch: the bot runs and the journal is clear`,
    opts,
    async () => {
      const bot = await startBot(`kill-${step}`);
      const crashing = await startWatch(bot, { HYPERBOT_OPS_TEST_CRASH_AT: step });
      let watch: Watch | null = null;
      try {
        await ready(bot, crashing);
        await writeTrigger(bot, `${REPO}:v2\n`);
        const exit = await crashing.exited;
        assert.equal(
          exit.signal,
          "SIGKILL",
          `it should have died at ${step}\n${crashing.output()}`,
        );
        assert.equal(
          await exists(join(bot.stateDir, "journal.json")),
          true,
          "the kill left a journal",
        );

        watch = await startWatch(bot);
        await ready(bot, watch);
        await eventually(
          "the journal clear",
          async () => !(await exists(join(bot.stateDir, "journal.json"))),
        );
        const running = await inspect(bot.name);
        assert.ok(running?.running, `the bot runs after a kill at ${step}`);
        assert.ok([`${REPO}:v1`, `${REPO}:v2`].includes(running!.image));
        for (const leftover of [`${bot.name}-previous`, `${bot.name}-updating`]) {
          assert.equal(await inspect(leftover), null, `${leftover} cleaned up`);
        }
        const s = await status(bot);
        assert.ok(s && s.finishedAt !== null, `a final status: ${JSON.stringify(s)}`);
        const expected = s.state === "succeeded" ? `${REPO}:v2` : `${REPO}:v1`;
        assert.equal(running!.image, expected, `the status tells the truth: ${JSON.stringify(s)}`);
        assert.deepEqual(await claimedEntries(bot), [], "the trigger is not run twice");
        assert.equal((await watch.stop()).code, 0);
      } finally {
        await crashing.stop();
        await watch?.stop();
        await bot.cleanup();
      }
    },
  );
}

const restartDocker = Deno.env.get("HYPERBOT_TEST_RESTART_DOCKER") === "1";

async function stopDockerd() {
  const pid = Number((await Deno.readTextFile("/var/run/docker.pid")).trim());
  assert.ok(pid > 0, "no dockerd pid in /var/run/docker.pid");
  Deno.kill(pid, "SIGTERM");
  await eventually("dockerd stopped", () => {
    try {
      Deno.kill(pid, "SIGCONT");
      return Promise.resolve(false);
    } catch {
      return Promise.resolve(true);
    }
  }, { timeoutMs: 60_000 });
}

async function startDockerd() {
  // The same way scripts/test-env.sh starts it.
  await runCommand("sh", ["-c", `setsid nohup dockerd >>${DOCKERD_LOG} 2>&1 </dev/null &`]);
  await eventually(
    "dockerd answering",
    async () => (await runCommand("docker", ["info"])).code === 0,
    { timeoutMs: 60_000 },
  );
}

Deno.test({
  name: "the Docker daemon restarted while watching: the trigger is kept and runs when it is back",
  ignore: !restartDocker,
  ...opts,
  fn: async () => {
    const bot = await startBot("dockerd", `${REPO}:v1`, ["--restart", "unless-stopped"]);
    const watch = await startWatch(bot);
    let dockerDown = false;
    try {
      await ready(bot, watch);
      await stopDockerd();
      dockerDown = true;
      await writeTrigger(bot, `${REPO}:v2\n`);
      await sleep(3_000);
      const waiting = await readJson<Heartbeat>(join(bot.stateDir, "heartbeat.json"));
      assert.equal(waiting?.state, "waiting_for_docker");
      assert.equal((await claimedEntries(bot)).length, 1, "the trigger is kept");
      assert.notEqual((await status(bot))?.state, "succeeded");
      await startDockerd();
      dockerDown = false;
      await eventually("the update after the daemon came back", async () => {
        const s = await status(bot);
        return s?.state === "succeeded" ? s : null;
      }, { timeoutMs: 120_000 });
      assert.equal((await inspect(bot.name))?.image, `${REPO}:v2`);
      assert.equal((await watch.stop()).code, 0);
      assert.match(
        await Deno.readTextFile(join(bot.logDir, "monitor.log")),
        /Docker daemon unreachable/,
      );
    } finally {
      if (dockerDown) await startDockerd();
      await watch.stop();
      await bot.cleanup();
    }
  },
});
