import assert from "node:assert/strict";
import type { ContainerInfo } from "../../lib/docker.ts";
import type { Heartbeat } from "../../lib/watch/heartbeat.ts";
import type { StatusFile } from "../../lib/update/report.ts";
import { formatAge, gatherStatus, renderStatus, type StatusDeps } from "../../lib/status.ts";
import { FakeCronTable } from "../fakes/crontab.ts";
import type { Config } from "../../lib/config.ts";
import { parseShow } from "../../lib/adapters/systemctl.ts";
import { FakeServiceManager } from "../fakes/systemctl.ts";
import { FakeClock, FakeJournal, FakeLock } from "../fakes/state.ts";
import { FakeComposeFiles } from "../fakes/compose.ts";
import { composeStatus } from "../../lib/compose/pin.ts";

const UNIT = "hyperbot-update-monitor.service";
const config = {
  service: "hyperbot-update-monitor",
  container: "bot",
  logDir: "/opt/bot/logs",
  configFile: "/etc/hyperbot-ops/config.json",
  notify: [] as Config["notify"],
  metricsFile: "",
};
const CRON =
  "# Installed by 'hyperbot-ops install'\nPATH=/usr/bin:/bin\n*/5 * * * * root /usr/local/bin/hyperbot-ops health --quiet --config /etc/hyperbot-ops/config.json\n";

const BOT: ContainerInfo = {
  id: "c1",
  name: "bot",
  imageRef: "127.0.0.1:5000/hyperbot/app:v2",
  imageId: "sha256:bbb",
  running: true,
  restarting: false,
  status: "running",
  exitCode: 0,
  restartCount: 0,
  health: "healthy",
  startedAt: "2026-11-29T11:00:00Z",
  labels: { "org.opencontainers.image.version": "2.0.0" },
  inspect: {} as ContainerInfo["inspect"],
};

const LAST: StatusFile = {
  id: "u1",
  state: "succeeded",
  container: "bot",
  image: "127.0.0.1:5000/hyperbot/app:v2",
  previousImage: "127.0.0.1:5000/hyperbot/app:v1",
  imageId: "sha256:bbb",
  startedAt: "2026-11-29T11:00:00Z",
  finishedAt: "2026-11-29T11:00:20Z",
  error: null,
  warnings: [],
  steps: [],
};

function setup() {
  const clock = new FakeClock();
  const services = new FakeServiceManager(clock);
  const unit = services.addUnit(UNIT);
  const state = {
    cron: new FakeCronTable(CRON),
    heartbeat: {
      timestamp: clock.now().toISOString(),
      pid: unit.mainPid,
      state: "idle",
      startedAt: "",
      intervalMs: 30_000,
    } as
      | Heartbeat
      | null,
    bot: BOT as ContainerInfo | null,
    last: LAST as StatusFile | null,
    rejection: null as StatusFile | null,
    journal: new FakeJournal(),
    lock: new FakeLock(),
    logs: {
      "/opt/bot/logs/monitor.log": ["m1", "m2"],
      "/opt/bot/logs/update.log": ["u1"],
    } as Record<string, string[]>,
  };
  const deps: StatusDeps = {
    services,
    cron: state.cron,
    heartbeat: { read: () => Promise.resolve(state.heartbeat) },
    docker: { inspectContainer: () => Promise.resolve(state.bot) },
    records: {
      lastUpdate: () => Promise.resolve(state.last),
      lastRejection: () => Promise.resolve(state.rejection),
    },
    unfinished: { journal: state.journal, lock: state.lock },
    tail: (path, n) => Promise.resolve(state.logs[path]?.slice(-n) ?? null),
    clock,
  };
  return { deps, services, state, clock };
}

Deno.test("status of a healthy installation is all ✅ and ok", async () => {
  const { deps, clock } = setup();
  await clock.sleep(5_000);
  const report = await gatherStatus(deps, config);
  assert.equal(report.ok, true);
  const text = renderStatus(report, { color: false });
  assert.match(
    text,
    /^✅ Service +hyperbot-update-monitor\.service active \(running\) since 2026-11-29T12:00:00\.000Z \(5 s\)$/m,
  );
  assert.match(text, /^✅ At boot +enabled$/m);
  assert.match(
    text,
    /^✅ Cron +\/etc\/cron\.d\/hyperbot-ops: \*\/5 \* \* \* \* root .* health --quiet --config \/etc\/hyperbot-ops\/config\.json$/m,
  );
  assert.match(text, /^✅ Watcher +heartbeat 5 s ago, idle, pid \d+$/m);
  assert.match(text, /^✅ Container +bot running, healthy since 2026-11-29T11:00:00Z$/m);
  assert.match(text, /^ {3}Image +127\.0\.0\.1:5000\/hyperbot\/app:v2 {2}version 2\.0\.0$/m);
  assert.match(
    text,
    /^✅ Last update +succeeded 2026-11-29T11:00:20Z 127\.0\.0\.1:5000\/hyperbot\/app:v2 \(from 127\.0\.0\.1:5000\/hyperbot\/app:v1\)$/m,
  );
  assert.match(text, /── monitor\.log.*\n {3}m1\n {3}m2/);
  assert.match(text, /── health-check\.log.*\n {3}\(no log file\)/);
  assert.ok(!text.includes("❌"));
  assert.ok(!text.includes("\x1b["), "no escape codes without colour");
});

Deno.test("status on a terminal uses bold headings", async () => {
  const { deps } = setup();
  assert.ok(renderStatus(await gatherStatus(deps, config), { color: true }).includes("\x1b[1m"));
});

Deno.test("a stopped, disabled service without cron entry shows ❌ and is not ok", async () => {
  const { deps, services, state } = setup();
  await services.disableNow(UNIT);
  state.cron.content = "# nothing\n";
  const report = await gatherStatus(deps, config);
  assert.equal(report.ok, false);
  const text = renderStatus(report, { color: false });
  assert.match(text, /^❌ Service +hyperbot-update-monitor\.service inactive \(dead\)$/m);
  assert.match(text, /^❌ At boot +disabled$/m);
  assert.match(text, /^❌ Cron +no health entry in \/etc\/cron\.d\/hyperbot-ops$/m);
  assert.match(text, /^❌ Watcher +stopped: heartbeat/m);
});

Deno.test("a missing bot container and a rolled-back update show ❌", async () => {
  const { deps, state } = setup();
  state.bot = null;
  state.last = { ...LAST, state: "rolled_back", error: "new container never became healthy" };
  const report = await gatherStatus(deps, config);
  assert.equal(report.ok, false);
  const text = renderStatus(report, { color: false });
  assert.match(text, /^❌ Container +bot missing$/m);
  assert.match(text, /^❌ Last update +rolled_back .*: new container never became healthy$/m);
});

Deno.test("no update yet is not a fault", async () => {
  const { deps, state } = setup();
  state.last = null;
  const report = await gatherStatus(deps, config);
  assert.equal(report.ok, true);
  assert.match(renderStatus(report, { color: false }), /^➖ Last update +none recorded$/m);
});

Deno.test("status without systemd says so instead of failing", async () => {
  const { deps, services } = setup();
  services.options.unreachable = true;
  const report = await gatherStatus(deps, config);
  assert.equal(report.ok, false);
  assert.match(renderStatus(report, { color: false }), /^❌ Service +cannot ask systemd: /m);
});

Deno.test("status JSON has the documented top-level keys", async () => {
  const { deps } = setup();
  const report = await gatherStatus(deps, config);
  for (const key of ["service", "cron", "container", "watcher", "lastUpdate", "logs"]) {
    assert.ok(key in report, key);
  }
  assert.deepEqual(Object.keys(report.logs), ["monitor", "update", "health"]);
  assert.deepEqual(report.logs.update, { path: "/opt/bot/logs/update.log", lines: ["u1"] });
  assert.equal(report.container.version, "2.0.0");
  assert.equal(report.lastUpdate?.state, "succeeded");
});

Deno.test("ages read like a person would say them", () => {
  assert.equal(formatAge(42_000), "42 s");
  assert.equal(formatAge(5 * 60_000), "5 min");
  assert.equal(formatAge((3 * 60 + 12) * 60_000), "3 h 12 min");
  assert.equal(formatAge(52 * 3600_000), "2 d 4 h");
});

Deno.test("a rejected trigger is shown beside the last update, never in its place, and is not a fault", async () => {
  const { deps, state } = setup();
  state.rejection = {
    ...LAST,
    id: "trg-1",
    state: "rejected",
    image: "evil.example/app:v9",
    finishedAt: "2026-11-29T11:30:00Z",
    error: "rejected trigger: repository not allowed",
  };
  const report = await gatherStatus(deps, config);
  assert.equal(report.ok, true);
  assert.equal(report.lastUpdate?.state, "succeeded");
  assert.equal(report.lastRejection?.error, "rejected trigger: repository not allowed");
  const text = renderStatus(report, { color: false });
  assert.match(text, /^✅ Last update +succeeded /m);
  assert.match(
    text,
    /^➖ Rejected +trigger 2026-11-29T11:30:00Z \(asked for evil\.example\/app:v9\): rejected trigger: repository not allowed$/m,
  );

  // After a rollback, a rejection does not make the rollback vanish.
  state.last = { ...LAST, state: "rolled_back", error: "the new container failed: exit code 1" };
  const after = await gatherStatus(deps, config);
  assert.equal(after.lastUpdate?.ok, false);
  assert.equal(after.lastUpdate?.state, "rolled_back");
  assert.equal(after.ok, false);
});

Deno.test("a rejection older than a day is no longer shown", async () => {
  const { deps, state } = setup();
  state.rejection = {
    ...LAST,
    state: "rejected",
    finishedAt: "2026-11-28T11:59:00Z",
    error: "old",
  };
  const report = await gatherStatus(deps, config);
  assert.equal(report.lastRejection, null);
  assert.doesNotMatch(renderStatus(report, { color: false }), /Rejected/);
});

Deno.test("an update the journal holds with no process running it is ❌ with what finishes it", async () => {
  const { deps, state, services } = setup();
  await state.journal.write({
    id: "upd-1",
    pid: 4242,
    startedAt: "2026-11-29T11:59:00Z",
    container: "bot",
    step: "verify",
    verified: false,
    image: "127.0.0.1:5000/hyperbot/app:v3",
    previousImage: "127.0.0.1:5000/hyperbot/app:v2",
    previousImageId: "sha256:bbb",
    oldContainerId: "c1",
    oldWasRunning: true,
    oldRestartPolicy: null,
    newContainerId: "c2",
    tempName: "bot-updating",
    previousName: "bot-previous",
    steps: [],
  });
  // The killed watcher's last heartbeat is still fresh and says "updating", naming its pid.
  state.heartbeat = { ...state.heartbeat!, pid: 4242, state: "updating" };
  services.units.get(UNIT)!.mainPid = 5151;
  const report = await gatherStatus(deps, config);
  assert.equal(report.ok, false);
  assert.equal(report.unfinished?.step, "verify");
  assert.equal(report.watcher.heartbeat?.live, false);
  const text = renderStatus(report, { color: false });
  assert.match(text, /^❌ Unfinished +update upd-1 was interrupted at step verify /m);
  assert.match(text, /hint: the watcher finishes it .*'hyperbot-ops update' finishes it/);
  assert.match(text, /stale \(last said updating; pid 4242 is not the service's process\)/);
  assert.doesNotMatch(text, /, updating, pid/);

  // While an update runs, it holds the lock and owns its journal: not unfinished.
  state.lock.current = { pid: 1, command: "update (cli)", since: "" };
  assert.equal((await gatherStatus(deps, config)).unfinished, null);
});

Deno.test("text from the bot's status file reaches the terminal without escape sequences", async () => {
  const { deps, state } = setup();
  state.last = { ...LAST, state: "rolled_back", error: "boom\u001b[2J\u001b[32m✅ all fine" };
  const report = await gatherStatus(deps, config);
  assert.ok(!renderStatus(report, { color: false }).includes("\u001b[2J"));
  state.last = { ...LAST, state: "hacked" as unknown as typeof LAST.state };
  const forged = await gatherStatus(deps, config);
  assert.equal(forged.lastUpdate?.ok, false);
  assert.match(forged.lastUpdate?.error ?? "", /unknown state 'hacked'/);
});

/** Any C0/C1 control, DEL, bidi override or isolate left in rendered text. */
// deno-lint-ignore no-control-regex
const RAW_ESCAPE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

Deno.test("non-string fields of the status file are rendered printable, on the screen and in JSON", async () => {
  const { deps, state } = setup();
  const title = ["\u001b]0;owned\u0007\u001b[2J", "\u009b31m", "\u202egpj.exe"];
  state.last = {
    ...LAST,
    state: "failed",
    error: title,
    image: { x: "\u009d0;t\u009c" },
    id: 7,
    previousImage: ["\u001b[2J"],
    finishedAt: ["\u2066x\u2069"],
  } as unknown as StatusFile;
  const report = await gatherStatus(deps, config);
  const text = renderStatus(report, { color: false });
  assert.doesNotMatch(text, RAW_ESCAPE);
  assert.match(text, /\\u001b\]0;owned\\u0007\\u001b\[2J/);
  assert.equal(typeof report.lastUpdate?.error, "string");
  const json = JSON.stringify(report);
  assert.doesNotMatch(json, RAW_ESCAPE);
});

Deno.test("log tails shown by status hold no raw escapes and are cut to a bounded length", async () => {
  const { deps, state } = setup();
  state.logs["/opt/bot/logs/monitor.log"] = [
    "INFO  watch: \u001b]0;owned\u0007\u001b[2J\u009b2J\u202e",
    "x".repeat(100_000),
  ];
  const report = await gatherStatus(deps, config);
  const text = renderStatus(report, { color: false });
  assert.doesNotMatch(text, RAW_ESCAPE);
  assert.match(text, /INFO {2}watch: \\x1b\]0;owned/);
  assert.ok(text.length < 5_000, `${text.length}`);
});

Deno.test("labels and names from the container's image reach the screen printable", async () => {
  const { deps, state } = setup();
  state.bot = { ...BOT, labels: { "org.opencontainers.image.version": "1.0\u001b[2J\u202e" } };
  const report = await gatherStatus(deps, config);
  assert.doesNotMatch(renderStatus(report, { color: false }), RAW_ESCAPE);
  assert.doesNotMatch(JSON.stringify(report), RAW_ESCAPE);
});

Deno.test("status shows whether a compose bot's compose file names the running image", async () => {
  const { deps } = setup();
  const labels = {
    "com.docker.compose.project": "trading",
    "com.docker.compose.service": "app",
    "com.docker.compose.project.working_dir": "/opt/trading-system",
    "com.docker.compose.project.config_files": "docker-compose.yml",
  };
  const yml = "/opt/trading-system/docker-compose.yml";
  const files = new FakeComposeFiles({
    [yml]: "services:\n  app:\n    image: 127.0.0.1:5000/hyperbot/app:v1\n",
  });
  const docker = {
    inspectContainer: () => Promise.resolve({ ...BOT, labels }),
    inspectImage: () =>
      Promise.resolve({ id: BOT.imageId, repoTags: [], repoDigests: [], created: "", config: {} }),
  };
  deps.docker = docker;
  deps.compose = (c) => composeStatus(docker, files, "pin", c);

  const stale = await gatherStatus(deps, config);
  assert.equal(stale.compose?.agrees, false);
  assert.equal(stale.ok, false, "a compose file that would downgrade the bot is a ❌");
  const screen = renderStatus(stale, { color: false });
  assert.match(
    screen,
    /❌ Compose .*docker-compose.yml line 3 names 127.0.0.1:5000\/hyperbot\/app:v1, the container runs .*app:v2/,
  );

  files.files.set(yml, "services:\n  app:\n    image: 127.0.0.1:5000/hyperbot/app:v2\n");
  const pinned = await gatherStatus(deps, config);
  assert.equal(pinned.compose?.agrees, true);
  assert.equal(pinned.ok, true);
  assert.match(
    renderStatus(pinned, { color: false }),
    /✅ Compose .*line 3 names the running image/,
  );

  files.files.set(yml, "services:\n  app:\n    image: ${BOT_IMAGE}\n");
  const unknown = await gatherStatus(deps, config);
  assert.equal(unknown.compose?.agrees, null);
  assert.equal(unknown.ok, true, "what cannot be told is shown, not failed");
  assert.match(
    renderStatus(unknown, { color: false }),
    /➖ Compose .*cannot tell.*BOT_IMAGE is not set/,
  );

  deps.compose = (c) => composeStatus(docker, files, "off", c);
  const off = await gatherStatus(deps, config);
  assert.equal(off.compose, null);
  assert.doesNotMatch(renderStatus(off, { color: false }), /Compose/);
});

Deno.test("status counts only the health entry for its own config: a second bot's entry is ❌", async () => {
  const { deps, state } = setup();
  // What the first bot's file held after a second bot's install replaced it (before issue 14).
  state.cron.content = CRON.replace("/etc/hyperbot-ops/config.json", "/etc/hyperbot-ops/bot2.json");
  const report = await gatherStatus(deps, config);
  assert.equal(report.cron.present, true);
  assert.equal(report.cron.ok, false);
  assert.equal(report.ok, false);
  assert.match(
    renderStatus(report, { color: false }),
    /^❌ Cron +the health entry in \/etc\/cron\.d\/hyperbot-ops is for another config, not \/etc\/hyperbot-ops\/config\.json$/m,
  );
  // A path that merely starts like ours is not ours either.
  state.cron.content = CRON.replace("config.json", "config.json.old");
  assert.equal((await gatherStatus(deps, config)).cron.ok, false);
  // The second bot's own status sees its entry.
  state.cron.content = CRON.replace("/etc/hyperbot-ops/config.json", "/etc/hyperbot-ops/bot2.json");
  const bot2 = await gatherStatus(deps, { ...config, configFile: "/etc/hyperbot-ops/bot2.json" });
  assert.equal(bot2.cron.ok, true);
  // An entry without --config reads the default config file.
  state.cron.content = CRON.replace(" --config /etc/hyperbot-ops/config.json", "");
  assert.equal((await gatherStatus(deps, config)).cron.ok, true);
  assert.equal(
    (await gatherStatus(deps, { ...config, configFile: "/etc/x/bot2.json" })).cron.ok,
    false,
  );
});

/** `systemctl show` of the unit install wrote without notify and metricsFile (systemd 252). */
const CLOSED_UNIT_SHOW = `LoadState=loaded
PrivateNetwork=yes
RestrictAddressFamilies=AF_UNIX
IPAddressDeny=::/0 0.0.0.0/0
IPAddressAllow=
ProtectSystem=strict
ReadWritePaths=-/opt/bot -/opt/bot/data -/opt/bot/logs -/var/lib/hyperbot-ops
`;
/** The same with notify and metricsFile installed. */
const OPEN_UNIT_SHOW = `LoadState=loaded
PrivateNetwork=no
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
IPAddressDeny=
IPAddressAllow=
ProtectSystem=strict
ReadWritePaths=-/opt/bot -/opt/bot/data -/opt/bot/logs -/var/lib/hyperbot-ops -/var/lib/prom
`;

Deno.test("status says ❌ Unit when notify or metricsFile is configured but the installed unit forbids it", async () => {
  const { deps, services } = setup();
  const unit = services.units.get(UNIT)!;
  unit.access = parseShow(UNIT, CLOSED_UNIT_SHOW).access;
  const needs = {
    ...config,
    notify: [{
      type: "webhook",
      name: "ops",
      url: "https://ops.example.com/h",
    }] as Config["notify"],
    metricsFile: "/var/lib/prom/hyperbot.prom",
  };
  // Nothing configured that the unit forbids: all well.
  assert.equal((await gatherStatus(deps, config)).ok, true);

  const report = await gatherStatus(deps, needs);
  assert.equal(report.ok, false);
  assert.equal(report.access.problems.length, 2, report.access.problems.join("\n"));
  const text = renderStatus(report, { color: false });
  assert.match(
    text,
    /^❌ Unit +notify is configured, but hyperbot-update-monitor\.service gives the watcher no network \(PrivateNetwork=yes\).*install --apply --config \/etc\/hyperbot-ops\/config\.json/m,
  );
  assert.match(
    text,
    /^❌ Unit +metricsFile is set, but its folder \/var\/lib\/prom is not writable/m,
  );

  // After 'install --apply' with the new config the unit allows both.
  unit.access = parseShow(UNIT, OPEN_UNIT_SHOW).access;
  const fixed = await gatherStatus(deps, needs);
  assert.deepEqual(fixed.access.problems, []);
  assert.equal(fixed.ok, true);
});
