/**
 * End to end on a real systemd: a debootstrap'd Debian bookworm (scripts/build-systemd-rootfs.sh)
 * boots systemd as PID 1 in a container, with the host's Docker socket, the deno binary, the
 * repository (read-only) and the Deno cache mounted. In it: `install --apply`, the runbook's
 * three recovery tests, a real cron run of `health`, a hung (frozen) watcher repaired by
 * `health`, idempotent reinstall, and `--uninstall` (refused while an update is unfinished).
 *
 * The bot container runs on the host daemon; its data folder has the same path on the host
 * and in the systemd container (bind mounts given to the daemon use host paths).
 *
 * Needs root, Docker, debootstrap (or the cached image) and the test registry
 * (`bash scripts/test-env.sh`). Fails loudly when any is missing; never skips.
 * With HYPERBOT_OPS_BIN set, runs the compiled binary instead of `deno run main.ts`.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cliCommand } from "../support/cli.ts";
import { docker, dockerOk, IMAGE_V1, requireTestEnv, TEST_DOCKER_CONFIG } from "../support/env.ts";

const REPO = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
/**
 * Where the source is mounted in the systemd container. A fixed path: the clone may live under
 * /tmp, which the hardened unit's PrivateTmp hides from the service.
 */
const SRC_INSIDE = "/opt/hyperbot-ops-src";
const SYSTEMD_IMAGE = Deno.env.get("HYPERBOT_SYSTEMD_IMAGE") ?? "hyperbot-systemd:bookworm";
const UNIT = "hyperbot-update-monitor.service";
const RUN_ID = crypto.randomUUID().slice(0, 8);
const SYSTEMD_CONTAINER = `hbt-e2e-systemd-${RUN_ID}`;
const BOT = `hbt-e2e-bot-${RUN_ID}`;
/** Same path on the host and in the systemd container. Not under /tmp: the unit has PrivateTmp. */
const RUN_DIR = `/var/lib/hbt-e2e/${RUN_ID}`;
const BASE_DIR = `${RUN_DIR}/opt`;
const DATA_DIR = `${BASE_DIR}/data`;
const LOG_DIR = `${BASE_DIR}/logs`;
const CONFIG_FLAGS = ["--base-dir", BASE_DIR, "--container", BOT];

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command in the systemd container. */
async function inside(cmd: string[], env: Record<string, string> = {}): Promise<Result> {
  const envArgs = Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
  return await docker("exec", ...envArgs, SYSTEMD_CONTAINER, ...cmd);
}

async function insideOk(cmd: string[]): Promise<string> {
  const r = await inside(cmd);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The CLI as an operator runs it in the systemd container (same paths as on the host). */
function cli(args: string[]): Promise<Result> {
  const command = cliCommand().map((part) =>
    part.startsWith(REPO + "/") ? SRC_INSIDE + part.slice(REPO.length) : part
  );
  // The repository is mounted read-only: deno must not try to write deno.lock.
  if (command[1] === "run") command.splice(2, 0, "--no-lock");
  return inside([...command, ...args], { DENO_DIR: denoDir(), NO_COLOR: "1" });
}

function denoDir(): string {
  return Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");
}

async function show(prop: string): Promise<string> {
  return (await insideOk(["systemctl", "show", UNIT, "-p", prop, "--value"])).trim();
}

async function waitUntil(what: string, timeoutMs: number, probe: () => Promise<boolean>) {
  const start = Date.now();
  while (!(await probe())) {
    if (Date.now() - start > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return (Date.now() - start) / 1000;
}

async function readHost(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}

async function exists(path: string): Promise<boolean> {
  return (await inside(["test", "-e", path])).code === 0;
}

/** Runs the command of the installed cron line, with cron's bare environment. */
async function healthAsCronRunsIt(): Promise<Result> {
  const line = (await insideOk(["cat", "/etc/cron.d/hyperbot-ops"])).split("\n")
    .find((l) => /^[\d*]/.test(l))!;
  const command = line.split(/\s+/).slice(6).join(" ");
  return await inside([
    "env",
    "-i",
    "PATH=/usr/bin:/bin",
    "HOME=/root",
    "SHELL=/bin/sh",
    "LOGNAME=root",
    "/bin/sh",
    "-c",
    command,
  ]);
}

/** The preconditions, each failing with what to do. */
async function prepare() {
  if (Deno.uid() !== 0) throw new Error("the systemd end-to-end suite must run as root");
  await requireTestEnv();
  const build = await new Deno.Command("bash", {
    args: [join(REPO, "scripts/build-systemd-rootfs.sh")],
    env: { HYPERBOT_SYSTEMD_IMAGE: SYSTEMD_IMAGE },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!build.success) {
    throw new Error(
      `scripts/build-systemd-rootfs.sh failed; the suite cannot run:\n${
        new TextDecoder().decode(build.stderr)
      }`,
    );
  }
}

async function startSystemd() {
  const deno = Deno.execPath();
  const mounts = [
    "/var/run/docker.sock:/var/run/docker.sock",
    `${deno}:${deno}:ro`,
    `${deno}:/usr/bin/deno:ro`,
    `${REPO}:${SRC_INSIDE}:ro`,
    `${denoDir()}:${denoDir()}:ro`,
    `${RUN_DIR}:${RUN_DIR}`,
  ];
  const bin = Deno.env.get("HYPERBOT_OPS_BIN");
  if (bin) mounts.push(`${bin}:${bin}:ro`);
  await dockerOk(
    "run",
    "-d",
    "--name",
    SYSTEMD_CONTAINER,
    "--hostname",
    "hbt-e2e",
    "--cap-add",
    "SYS_ADMIN",
    "--security-opt",
    "seccomp=unconfined",
    "--cgroupns=host",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "--stop-signal=SIGRTMIN+3",
    ...mounts.flatMap((m) => ["-v", m]),
    SYSTEMD_IMAGE,
  );
  await waitUntil("systemd to boot", 60_000, async () => {
    const r = await inside(["systemctl", "is-system-running"]);
    return ["running", "degraded"].includes(r.stdout.trim());
  });
  // The registry needs a login; give root the test one (the watcher reads ~/.docker/config.json).
  const config = await Deno.readTextFile(join(TEST_DOCKER_CONFIG, "config.json"));
  await insideOk(["mkdir", "-p", "/root/.docker"]);
  const write = new Deno.Command("docker", {
    args: ["exec", "-i", SYSTEMD_CONTAINER, "sh", "-c", "cat > /root/.docker/config.json"],
    stdin: "piped",
  }).spawn();
  const w = write.stdin.getWriter();
  await w.write(new TextEncoder().encode(config));
  await w.close();
  assert.equal((await write.status).code, 0);
}

async function cleanup() {
  await docker("rm", "-f", "-v", SYSTEMD_CONTAINER);
  const ours = await docker("ps", "-aq", "--filter", `name=${BOT}`);
  for (const id of ours.stdout.split("\n").filter(Boolean)) await docker("rm", "-f", "-v", id);
  await Deno.remove(RUN_DIR, { recursive: true }).catch(() => {});
  // The parent goes only when no other run uses it.
  await Deno.remove(dirname(RUN_DIR)).catch(() => {});
}

Deno.test({
  name: "on a real systemd: install, the runbook's recovery tests, cron, reinstall and uninstall",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await prepare();
    await Deno.mkdir(DATA_DIR, { recursive: true });
    const timings: Record<string, number> = {};
    try {
      await dockerOk("run", "-d", "--name", BOT, "-v", `${DATA_DIR}:/app/data`, IMAGE_V1);
      await startSystemd();

      const installed = await t.step(
        "install --apply installs, enables and starts the service and the cron entry",
        async () => {
          const r = await cli(["install", "--apply", ...CONFIG_FLAGS]);
          assert.equal(r.code, 0, `install failed:\n${r.stdout}\n${r.stderr}`);
          assert.match(r.stdout, /systemctl enable --now hyperbot-update-monitor\.service/);
          assert.match(
            r.stdout,
            /hyperbot-update-monitor\.service is active \(pid \d+\), enabled at boot/,
          );
          assert.equal((await inside(["systemctl", "is-active", UNIT])).stdout.trim(), "active");
          assert.equal((await inside(["systemctl", "is-enabled", UNIT])).stdout.trim(), "enabled");
          const cron = await insideOk(["cat", "/etc/cron.d/hyperbot-ops"]);
          assert.match(
            cron,
            /^\*\/5 \* \* \* \* root \/\S+ health --quiet --config \/etc\/hyperbot-ops\/config\.json$/m,
          );
          await waitUntil(
            "the first heartbeat",
            10_000,
            () => exists("/var/lib/hyperbot-ops/heartbeat.json"),
          );
        },
      );
      if (!installed) return;

      await t.step("a second install --apply changes nothing and says so", async () => {
        const pid = await show("MainPID");
        const r = await cli(["install", "--apply", ...CONFIG_FLAGS]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^nothing to change/);
        assert.equal(await show("MainPID"), pid, "the watcher was not restarted");
      });

      await t.step("health and status are all well", async () => {
        const health = await cli(["health"]);
        assert.equal(health.code, 0, `${health.stdout}\n${health.stderr}`);
        assert.match(health.stdout, /✅ watcher: .* active since/);
        const status = await cli(["status", "--json"]);
        assert.equal(status.code, 0, status.stdout);
        const json = JSON.parse(status.stdout);
        for (const key of ["service", "cron", "container", "watcher", "lastUpdate", "logs"]) {
          assert.ok(key in json, key);
        }
        assert.equal(json.container.version, "1");
        assert.equal(json.cron.present, true);
      });

      await t.step(
        "install --apply --metrics: the sandboxed watcher writes node_exporter's textfile",
        async () => {
          const prom = "/var/lib/node_exporter/textfile_collector/hyperbot_ops.prom";
          const r = await cli(["install", "--apply", "--metrics", ...CONFIG_FLAGS]);
          assert.equal(r.code, 0, `install failed:\n${r.stdout}\n${r.stderr}`);
          // The restarted watcher's first heartbeat rewrites the file (ProtectSystem=strict
          // would refuse it if the folder were not in ReadWritePaths).
          await waitUntil("the metrics file", 20_000, async () => {
            const text = await inside(["cat", prom]);
            return /^hyperbot_ops_watcher_heartbeat_timestamp_seconds [1-9]/m.test(text.stdout);
          });
          const text = await insideOk(["cat", prom]);
          assert.match(
            text,
            new RegExp(
              `^hyperbot_ops_container_info\\{container="${BOT}",.*version="1"\\} 1$`,
              "m",
            ),
          );
          assert.equal((await insideOk(["stat", "-c", "%a", prom])).trim(), "644");
          assert.equal((await insideOk(["stat", "-c", "%a", dirname(prom)])).trim(), "755");
        },
      );

      await t.step(
        "runbook test 1: after kill -9 of the watcher systemd has it back within 10-12 s",
        async () => {
          const pid = await show("MainPID");
          assert.notEqual(pid, "0");
          // This test is systemd's alone: a cron run of health at a 5-minute mark would repair
          // the watcher sooner (seen once in CI) and hide whether RestartSec holds.
          await insideOk(["systemctl", "stop", "cron"]);
          let seconds: number;
          try {
            await insideOk(["kill", "-9", pid]);
            seconds = await waitUntil("systemd to restart the watcher", 15_000, async () => {
              const now = await show("MainPID");
              return now !== "0" && now !== pid && (await show("ActiveState")) === "active";
            });
          } finally {
            await insideOk(["systemctl", "start", "cron"]);
          }
          timings["kill -9 -> back"] = seconds;
          assert.ok(seconds <= 12, `back after ${seconds} s`);
          assert.ok(seconds >= 9, `back after ${seconds} s: RestartSec=10 not honoured?`);
        },
      );

      await t.step(
        "runbook test 2: after systemctl stop, one health run as cron runs it brings it back",
        async () => {
          await insideOk(["systemctl", "stop", UNIT]);
          assert.equal(await show("ActiveState"), "inactive");
          const start = Date.now();
          const r = await healthAsCronRunsIt();
          timings["health repair (stop -> active)"] = (Date.now() - start) / 1000;
          assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
          assert.match(r.stdout, /🔧 watcher was stopped: restarted/);
          assert.equal(await show("ActiveState"), "active");
          assert.match(await readHost(join(LOG_DIR, "health-check.log")), /watcher repaired/);
        },
      );

      await t.step(
        "runbook test 3: a trigger with the current image goes through and update.log shows it",
        async () => {
          const image = (await dockerOk("inspect", BOT, "--format", "{{.Config.Image}}")).trim();
          const before = await readHost(join(LOG_DIR, "update.log"));
          await Deno.writeTextFile(join(DATA_DIR, ".update_trigger"), image + "\n");
          const start = Date.now();
          await waitUntil("the update to finish", 60_000, async () => {
            const status = await readHost(join(DATA_DIR, ".update_status.json"));
            return /"state": "(succeeded|unchanged|failed|rolled_back|rejected)"/.test(status);
          });
          timings["trigger -> finished"] = (Date.now() - start) / 1000;
          const status = JSON.parse(await readHost(join(DATA_DIR, ".update_status.json")));
          assert.ok(["succeeded", "unchanged"].includes(status.state), JSON.stringify(status));
          // The log file is flushed a moment after the status file is written: wait for the
          // update's last line, not its first.
          const finished = /update finished: (updated|unchanged)/;
          await waitUntil(
            "update.log to show the update finished",
            10_000,
            async () =>
              finished.test((await readHost(join(LOG_DIR, "update.log"))).slice(before.length)),
          );
          const log = (await readHost(join(LOG_DIR, "update.log"))).slice(before.length);
          assert.match(log, finished);
          assert.ok(log.includes(image), log);
          assert.equal(
            (await dockerOk("inspect", BOT, "--format", "{{.State.Running}}")).trim(),
            "true",
          );
        },
      );

      await t.step("a real cron run of health brings a stopped watcher back", async () => {
        const r = await cli([
          "install",
          "--apply",
          "--cron-schedule",
          "* * * * *",
          ...CONFIG_FLAGS,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(r.stdout.split("\n").filter((l) => l.startsWith("  ")), [
          "  update cron file /etc/cron.d/hyperbot-ops (mode 0644)",
        ]);
        // cron reads /etc/cron.d by modification time at the start of each minute.
        await new Promise((r) => setTimeout(r, 1500));
        await insideOk(["systemctl", "stop", UNIT]);
        const logBefore = await readHost(join(LOG_DIR, "health-check.log"));
        const seconds = await waitUntil(
          "cron to run health",
          75_000,
          async () => (await show("ActiveState")) === "active",
        );
        timings["stop -> cron health -> active"] = seconds;
        // health logs the result once it has seen the watcher stay up, a few seconds later.
        await waitUntil(
          "health to log the repair",
          15_000,
          async () =>
            /watcher (repaired|could not be repaired)/.test(
              (await readHost(join(LOG_DIR, "health-check.log"))).slice(logBefore.length),
            ),
        );
        const log = (await readHost(join(LOG_DIR, "health-check.log"))).slice(logBefore.length);
        assert.match(log, /watcher repaired/);
        assert.match(await insideOk(["journalctl", "-u", "cron", "--no-pager"]), /health --quiet/);
      });

      await t.step("a changed setting is applied: back to the 5-minute schedule", async () => {
        const r = await cli(["install", "--apply", ...CONFIG_FLAGS]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /update cron file/);
        assert.match(
          await insideOk(["cat", "/etc/cron.d/hyperbot-ops"]),
          /^\*\/5 \* \* \* \* root /m,
        );
        assert.match(
          (await cli(["install", "--apply", ...CONFIG_FLAGS])).stdout,
          /^nothing to change/,
        );
      });

      await t.step(
        "a hung watcher (frozen, its heartbeat stale) is killed and restarted by health",
        async () => {
          // health gives a watcher that started less than 90 s ago time to beat: wait that out.
          const enter = await insideOk([
            "systemctl",
            "show",
            UNIT,
            "-p",
            "ActiveEnterTimestamp",
            "--value",
            "--timestamp=unix",
          ]);
          const since = Number(enter.trim().replace(/^@/, "")) * 1000;
          assert.ok(since > 0, `ActiveEnterTimestamp: ${enter}`);
          const wait = since + 92_000 - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          const pid = await show("MainPID");
          await insideOk(["systemctl", "stop", "cron"]);
          try {
            // Frozen: it holds its pid and the unit stays active, but it no longer beats. The
            // heartbeat it left is made 5 minutes old rather than waiting 90 s for it to age.
            await insideOk(["kill", "-STOP", pid]);
            const stale = new Date(Date.now() - 300_000).toISOString();
            await insideOk([
              "sh",
              "-c",
              `printf '%s' '{"timestamp":"${stale}","pid":${pid},"state":"idle",` +
              `"startedAt":"${stale}","intervalMs":30000}' > /var/lib/hyperbot-ops/heartbeat.json`,
            ]);
            const checked = await cli(["health", "--no-fix"]);
            assert.notEqual(checked.code, 0, checked.stdout);
            assert.match(checked.stdout, /is hung: its heartbeat is stale/);
            assert.equal(await show("MainPID"), pid, "--no-fix changed nothing");

            const r = await healthAsCronRunsIt();
            assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
            assert.match(r.stdout, /🔧 watcher was hung: killed and restarted; pid \d+/);
            const now = await show("MainPID");
            assert.notEqual(now, pid);
            assert.equal(await show("ActiveState"), "active");
            await waitUntil("the new watcher's heartbeat", 15_000, async () => {
              const hb = await inside(["cat", "/var/lib/hyperbot-ops/heartbeat.json"]);
              return hb.stdout.includes(`"pid":${now}`) || hb.stdout.includes(`"pid": ${now}`);
            });
          } finally {
            await inside(["kill", "-CONT", pid]);
            await insideOk(["systemctl", "start", "cron"]);
          }
        },
      );

      await t.step(
        "install --uninstall refuses while an update is unfinished, and changes nothing",
        async () => {
          // The watcher and cron are stopped, so nothing recovers the planted journal meanwhile.
          await insideOk(["systemctl", "stop", "cron"]);
          await insideOk(["systemctl", "stop", UNIT]);
          const journal = "/var/lib/hyperbot-ops/journal.json";
          try {
            await insideOk(["sh", "-c", `echo '{}' > ${journal}`]);
            const r = await cli(["install", "--uninstall"]);
            assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
            assert.match(r.stderr, /an update is in progress or was left unfinished/);
            assert.match(r.stderr, /systemctl enable --now hyperbot-update-monitor\.service/);
            for (
              const path of [
                journal,
                "/etc/systemd/system/hyperbot-update-monitor.service",
                "/etc/cron.d/hyperbot-ops",
                "/etc/hyperbot-ops/config.json",
              ]
            ) {
              assert.ok(await exists(path), `${path} was removed`);
            }
            assert.equal(await show("UnitFileState"), "enabled");
          } finally {
            await inside(["rm", "-f", journal]);
            await insideOk(["systemctl", "start", UNIT]);
            await insideOk(["systemctl", "start", "cron"]);
          }
        },
      );

      await t.step(
        "install --uninstall leaves nothing behind but the bot, its data and the logs",
        async () => {
          const r = await cli(["install", "--uninstall"]);
          assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
          for (
            const path of [
              "/etc/systemd/system/hyperbot-update-monitor.service",
              "/etc/systemd/system/multi-user.target.wants/hyperbot-update-monitor.service",
              "/etc/cron.d/hyperbot-ops",
              "/etc/hyperbot-ops",
              "/var/lib/hyperbot-ops",
              "/usr/local/lib/hyperbot-ops",
            ]
          ) {
            assert.ok(!(await exists(path)), `${path} is still there`);
          }
          assert.equal(await show("LoadState"), "not-found");
          assert.equal(
            (await dockerOk("inspect", BOT, "--format", "{{.State.Running}}")).trim(),
            "true",
          );
          assert.ok(await exists(DATA_DIR));
          assert.ok(await exists(join(LOG_DIR, "health-check.log")));
          assert.match((await cli(["install", "--uninstall"])).stdout, /^nothing to change/);
        },
      );
    } finally {
      if (Object.keys(timings).length > 0) console.log("timings (s):", JSON.stringify(timings));
      if (Deno.env.get("HYPERBOT_E2E_KEEP")) {
        console.log(`kept ${SYSTEMD_CONTAINER} and ${BOT} (HYPERBOT_E2E_KEEP)`);
      } else {
        await cleanup();
      }
    }
  },
});

/** Starts a webhook receiver on 127.0.0.1 inside the systemd container; it appends each body to `<dir>/bodies`. */
async function startReceiver(dir: string): Promise<number> {
  await Deno.mkdir(dir, { recursive: true });
  const code = `
const dir = ${JSON.stringify(dir)};
Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => Deno.writeTextFileSync(dir + "/port", String(port)),
}, async (req) => {
  const body = await req.text();
  Deno.writeTextFileSync(dir + "/bodies", JSON.stringify({ path: new URL(req.url).pathname, body }) + "\\n", { append: true });
  return new Response("ok");
});`;
  await dockerOk(
    "exec",
    "-d",
    "-e",
    `DENO_DIR=${denoDir()}`,
    "-e",
    "DENO_NO_UPDATE_CHECK=1",
    SYSTEMD_CONTAINER,
    "deno",
    "eval",
    code,
  );
  let port = 0;
  await waitUntil("the webhook receiver to listen", 30_000, async () => {
    port = Number(await readHost(join(dir, "port")));
    return port > 0;
  });
  return port;
}

Deno.test({
  name:
    "on a real systemd: notify and metricsFile added after install; install --apply again opens the unit, a trigger's update reaches a webhook on 127.0.0.1 and the metrics file is written",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await prepare();
    await Deno.mkdir(DATA_DIR, { recursive: true });
    const hookDir = `${RUN_DIR}/hook`;
    const metricsFile = `${RUN_DIR}/metrics/hyperbot.prom`;
    try {
      await dockerOk("run", "-d", "--name", BOT, "-v", `${DATA_DIR}:/app/data`, IMAGE_V1);
      await startSystemd();
      // Only the watcher may write the metrics file here: health (from cron) would write it too.
      await insideOk(["systemctl", "stop", "cron"]);
      const installed = await cli(["install", "--apply", ...CONFIG_FLAGS]);
      assert.equal(installed.code, 0, `${installed.stdout}\n${installed.stderr}`);
      assert.equal(await show("PrivateNetwork"), "yes", "without notify the unit has no network");

      const port = await startReceiver(hookDir);
      const configFile = "/etc/hyperbot-ops/config.json";
      const config = JSON.parse(await insideOk(["cat", configFile]));
      config.notify = [{ type: "webhook", name: "e2e", url: `http://127.0.0.1:${port}/hook` }];
      config.notifyOutcomes = ["updated", "unchanged", "rolled_back", "failed"];
      await insideOk([
        "sh",
        "-c",
        `printf '%s\\n' '${JSON.stringify(config)}' > ${configFile}`,
      ]);

      await t.step("status and health --no-fix say the installed unit forbids notify", async () => {
        const status = await cli(["status", "--json"]);
        assert.equal(status.code, 1, status.stdout);
        const json = JSON.parse(status.stdout);
        assert.equal(json.access.ok, false);
        assert.match(json.access.problems[0], /no network \(PrivateNetwork=yes\)/);
        const health = await cli(["health", "--no-fix"]);
        assert.match(health.stdout, /⚠️ unit: notify is configured, .*install --apply/);
      });

      await t.step(
        "install --dry-run shows what the unit opens; --apply rewrites it and restarts",
        async () => {
          const dry = await cli([
            "install",
            "--dry-run",
            "--metrics-file",
            metricsFile,
            ...CONFIG_FLAGS,
          ]);
          assert.equal(dry.code, 0, `${dry.stdout}\n${dry.stderr}`);
          for (
            const line of [
              `create folder ${RUN_DIR}/metrics (mode 0755)`,
              "- PrivateNetwork=yes",
              "- IPAddressDeny=any",
              "+ RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
              "+ SocketBindDeny=any",
            ]
          ) {
            assert.ok(dry.stdout.includes(line), `'${line}' missing in:\n${dry.stdout}`);
          }
          assert.match(dry.stdout, new RegExp(`\\+ ReadWritePaths=.* -${RUN_DIR}/metrics$`, "m"));
          const r = await cli([
            "install",
            "--apply",
            "--metrics-file",
            metricsFile,
            ...CONFIG_FLAGS,
          ]);
          assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
          assert.match(r.stdout, /systemctl restart hyperbot-update-monitor\.service/);
          assert.equal(await show("PrivateNetwork"), "no");
          assert.match(await show("RestrictAddressFamilies"), /AF_INET/);
          assert.equal(await show("IPAddressDeny"), "");
          const mode = (await Deno.stat(`${RUN_DIR}/metrics`)).mode! & 0o777;
          assert.equal(mode, 0o755);
          const status = JSON.parse((await cli(["status", "--json"])).stdout);
          assert.equal(status.access.ok, true, JSON.stringify(status.access));
        },
      );

      await t.step(
        "a trigger's update is delivered to the webhook and the watcher writes the metrics file",
        async () => {
          const image = (await dockerOk("inspect", BOT, "--format", "{{.Config.Image}}")).trim();
          await Deno.writeTextFile(join(DATA_DIR, ".update_trigger"), image + "\n");
          // health (run above) may have sent its own message: look for the update's.
          const updates = async () =>
            (await readHost(join(hookDir, "bodies"))).split("\n").filter(Boolean)
              .map((l) => JSON.parse(JSON.parse(l).body))
              .filter((m) => ["updated", "unchanged"].includes(m.outcome));
          await waitUntil(
            "the webhook to receive the update's notification",
            90_000,
            async () => (await updates()).length > 0,
          );
          const [message] = await updates();
          assert.ok(JSON.stringify(message).includes(BOT), JSON.stringify(message));
          await waitUntil(
            "the watcher to write the metrics file",
            60_000,
            async () => /^hyperbot_/m.test(await readHost(metricsFile)),
          );
          assert.match(await readHost(metricsFile), /^hyperbot_\w+/m);
        },
      );
    } finally {
      if (Deno.env.get("HYPERBOT_E2E_KEEP")) {
        console.log(`kept ${SYSTEMD_CONTAINER} and ${BOT} (HYPERBOT_E2E_KEEP)`);
      } else {
        await cleanup();
      }
    }
  },
});
