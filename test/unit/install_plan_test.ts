import assert from "node:assert/strict";
import { dirname } from "node:path";
import {
  applyActions,
  type InstallDeps,
  InstallError,
  type InstallFiles,
  journalPending,
  readCurrentInstall,
} from "../../lib/install/apply.ts";
import {
  type Action,
  type CurrentFile,
  describeAction,
  desiredInstall,
  type InstallSettings,
  planInstall,
  planUninstall,
} from "../../lib/install/plan.ts";
import { loadConfig } from "../../lib/config.ts";
import { describeError } from "../../lib/errors.ts";
import { MemoryLogger } from "../../lib/log.ts";
import { FakeCronTable } from "../fakes/crontab.ts";
import type { CronTable } from "../../lib/adapters/crontab.ts";
import { cronFileFor } from "../../lib/install/cron.ts";
import { FakeServiceManager } from "../fakes/systemctl.ts";
import { FakeClock } from "../fakes/state.ts";

/** Files and folders in memory. */
class MemoryFiles implements InstallFiles {
  files = new Map<string, CurrentFile>();
  dirs = new Map<string, number>(
    [
      "/",
      "/etc",
      "/etc/systemd",
      "/etc/systemd/system",
      "/usr",
      "/usr/local",
      "/usr/local/lib",
      "/var",
      "/var/lib",
    ]
      .map((d) => [d, 0o755]),
  );
  read(path: string) {
    return Promise.resolve(this.files.get(path) ?? null);
  }
  dirMode(path: string) {
    return Promise.resolve(this.dirs.get(path) ?? null);
  }
  write(path: string, content: string, mode: number) {
    this.mkdirSync(dirname(path), 0o755);
    this.files.set(path, { content, mode });
    return Promise.resolve();
  }
  mkdir(path: string, mode: number) {
    this.mkdirSync(path, mode);
    this.dirs.set(path, mode);
    return Promise.resolve();
  }
  chmod(path: string, mode: number) {
    this.dirs.set(path, mode);
    return Promise.resolve();
  }
  remove(path: string) {
    this.files.delete(path);
    return Promise.resolve();
  }
  removeDir(path: string, recursive: boolean) {
    const inside = (p: string) => p.startsWith(path + "/");
    const busy = [...this.files.keys(), ...this.dirs.keys()].some(inside);
    if (busy && !recursive) return Promise.resolve(false);
    for (const p of [...this.files.keys()]) if (inside(p)) this.files.delete(p);
    for (const p of [...this.dirs.keys()]) if (inside(p)) this.dirs.delete(p);
    this.dirs.delete(path);
    return Promise.resolve(true);
  }
  private mkdirSync(path: string, mode: number) {
    if (this.dirs.has(path)) return;
    if (path !== "/") this.mkdirSync(dirname(path), 0o755);
    this.dirs.set(path, mode);
  }
}

function setup() {
  const clock = new FakeClock();
  const files = new MemoryFiles();
  const services = new FakeServiceManager(clock);
  const cron = new FakeCronTable();
  const deps: InstallDeps = { files, services, cron, logger: new MemoryLogger() };
  return { files, services, cron, deps };
}

function settings(overrides: Partial<InstallSettings> = {}, flags: Record<string, unknown> = {}) {
  const config = loadConfig({
    env: {},
    readTextFile: () => null,
    flags: { baseDir: "/opt/bot", ...flags },
  });
  return {
    config,
    configFile: "/etc/hyperbot-ops/config.json",
    savedSettings: { baseDir: "/opt/bot", ...flags },
    selfCommand: ["/usr/local/bin/hyperbot-ops"],
    ...overrides,
  } as InstallSettings;
}

async function install(deps: InstallDeps, s: InstallSettings): Promise<Action[]> {
  const desired = desiredInstall(s);
  const actions = planInstall(await readCurrentInstall(deps, desired), desired);
  await applyActions(actions, deps);
  return actions;
}

const kinds = (actions: Action[]) =>
  actions.map((a) =>
    a.kind === "write" ? `write ${a.role}` : a.kind === "mkdir" ? `mkdir ${a.path}` : a.kind
  );

Deno.test("a first install creates the folders and files, reloads systemd, enables and starts the service", async () => {
  const { deps, files, services, cron } = setup();
  const actions = await install(deps, settings());
  assert.deepEqual(kinds(actions), [
    "mkdir /opt/bot",
    "mkdir /opt/bot/data",
    "mkdir /opt/bot/logs",
    "mkdir /var/lib/hyperbot-ops",
    "mkdir /etc/hyperbot-ops",
    "write config",
    "write unit",
    "write cron",
    "daemon-reload",
    "enable-now",
    "write-manifest",
  ]);
  assert.equal(files.dirs.get("/var/lib/hyperbot-ops"), 0o750);
  assert.equal(files.files.get("/etc/hyperbot-ops/config.json")?.mode, 0o640);
  assert.deepEqual(JSON.parse(files.files.get("/etc/hyperbot-ops/config.json")!.content), {
    baseDir: "/opt/bot",
  });
  assert.ok(files.files.has("/etc/systemd/system/hyperbot-update-monitor.service"));
  assert.match(cron.content!, /^\*\/5 \* \* \* \* root \/usr\/local\/bin\/hyperbot-ops health/m);
  const unit = services.units.get("hyperbot-update-monitor.service")!;
  assert.equal(unit.activeState, "active");
  assert.equal(unit.enabled, true);
});

Deno.test("a second install changes nothing", async () => {
  const { deps, services } = setup();
  await install(deps, settings());
  services.calls.length = 0;
  assert.deepEqual(await install(deps, settings()), []);
  assert.ok(services.calls.every((c) => c.startsWith("status")), services.calls.join(", "));
});

Deno.test("a changed setting rewrites the config file and restarts the watcher, nothing else", async () => {
  const { deps } = setup();
  await install(deps, settings());
  const actions = await install(deps, settings({}, { container: "other-bot" }));
  assert.deepEqual(kinds(actions), ["write config", "restart"]);
});

Deno.test("a changed cron schedule rewrites only the cron file", async () => {
  const { deps, cron } = setup();
  await install(deps, settings());
  const actions = await install(deps, settings({ cronSchedule: "* * * * *" }));
  assert.deepEqual(kinds(actions), ["write cron"]);
  assert.match(cron.content!, /^\* \* \* \* \* root /m);
});

Deno.test("a moved executable rewrites unit and cron, reloads systemd and restarts", async () => {
  const { deps } = setup();
  await install(deps, settings());
  const actions = await install(
    deps,
    settings({ selfCommand: ["/opt/hyperbot-ops/bin/hyperbot-ops"] }),
  );
  assert.deepEqual(kinds(actions), ["write unit", "write cron", "daemon-reload", "restart"]);
});

Deno.test("a stopped or disabled service is enabled and started again", async () => {
  const { deps, services } = setup();
  await install(deps, settings());
  await services.disableNow("hyperbot-update-monitor.service");
  assert.deepEqual(kinds(await install(deps, settings())), ["enable-now"]);
  assert.equal(services.units.get("hyperbot-update-monitor.service")!.activeState, "active");
});

Deno.test("a state folder with the wrong mode is put right; the bot's folders are left as they are", async () => {
  const { deps, files } = setup();
  await install(deps, settings());
  files.dirs.set("/var/lib/hyperbot-ops", 0o777);
  files.dirs.set("/opt/bot/data", 0o777);
  const actions = await install(deps, settings());
  assert.deepEqual(
    actions.map((a) => a.kind === "chmod" ? `chmod ${a.path} ${a.mode.toString(8)}` : a.kind),
    [
      "chmod /var/lib/hyperbot-ops 750",
    ],
  );
  assert.equal(files.dirs.get("/opt/bot/data"), 0o777);
});

Deno.test("running from source installs a launcher that the unit and cron run", async () => {
  const { deps, files, cron } = setup();
  await install(
    deps,
    settings({
      selfCommand: ["/usr/bin/deno", "run", "--allow-read", "/src/main.ts"],
      denoDir: "/root/.cache/deno",
    }),
  );
  const launcher = files.files.get("/usr/local/lib/hyperbot-ops/hyperbot-ops");
  assert.equal(launcher?.mode, 0o755);
  assert.match(
    files.files.get("/etc/systemd/system/hyperbot-update-monitor.service")!.content,
    /^ExecStart=\/usr\/local\/lib\/hyperbot-ops\/hyperbot-ops watch /m,
  );
  assert.match(cron.content!, / root \/usr\/local\/lib\/hyperbot-ops\/hyperbot-ops health /);
});

Deno.test("uninstall removes exactly what install created and leaves data and logs", async () => {
  const { deps, files, services, cron } = setup();
  files.dirs.set("/opt/bot", 0o755);
  files.dirs.set("/opt/bot/data", 0o755);
  files.files.set("/opt/bot/data/bot.db", { content: "data", mode: 0o644 });
  const before = new Set(files.dirs.keys());
  await install(
    deps,
    settings({ selfCommand: ["/usr/bin/deno", "run", "/src/main.ts"], denoDir: null }),
  );
  files.files.set("/var/lib/hyperbot-ops/heartbeat.json", { content: "{}", mode: 0o644 });
  files.files.set("/opt/bot/logs/monitor.log", { content: "log", mode: 0o640 });
  const s = settings({ selfCommand: ["/usr/bin/deno", "run", "/src/main.ts"], denoDir: null });
  const desired = desiredInstall(s);
  const actions = planUninstall(await readCurrentInstall(deps, desired), desired);
  await applyActions(actions, deps);
  assert.deepEqual([...files.files.keys()].sort(), [
    "/opt/bot/data/bot.db",
    "/opt/bot/logs/monitor.log",
  ]);
  const leftDirs = [...files.dirs.keys()].filter((d) => !before.has(d)).sort();
  assert.deepEqual(leftDirs, ["/opt/bot/logs"], "only the log folder (with the logs) stays");
  assert.equal(cron.content, null);
  assert.equal(services.units.get("hyperbot-update-monitor.service")!.enabled, false);
  assert.ok(services.calls.includes("daemon-reload"));

  const again = planUninstall(await readCurrentInstall(deps, desired), desired);
  assert.deepEqual(
    again.filter((a) => a.kind !== "disable-now" && a.kind !== "require-no-journal"),
    [],
  );
});

Deno.test("uninstall stops at an unfinished update, right after the service stopped", async () => {
  const { deps, files, services, cron } = setup();
  const s = settings();
  await install(deps, s);
  const desired = desiredInstall(s);
  const journal = "/var/lib/hyperbot-ops/journal.json";
  assert.equal(desired.journalPath, journal);
  assert.equal((await readCurrentInstall(deps, desired)).journal, false);

  // The journal appears after the plan was made (the service, stopping, was killed mid-update).
  const actions = planUninstall(await readCurrentInstall(deps, desired), desired);
  files.files.set(journal, { content: '{"step":"stop"}', mode: 0o640 });
  assert.equal((await readCurrentInstall(deps, desired)).journal, true);
  await assert.rejects(applyActions(actions, deps), (err: unknown) => {
    assert.ok(err instanceof InstallError, String(err));
    // What main.ts prints: the message with its cause, and the cause's own advice first.
    const shown = describeError(err);
    assert.match(shown.message, /check that no update is left unfinished/);
    assert.match(shown.message, /in progress or was left unfinished/);
    assert.match(
      shown.hint ?? "",
      /^start the watcher: 'systemctl enable --now hyperbot-update-monitor\.service'/,
    );
    assert.match(shown.hint ?? "", /once \/var\/lib\/hyperbot-ops\/journal\.json is gone/);
    assert.match(shown.hint ?? "", /done before it: remove cron file/);
    return true;
  });
  assert.equal(services.units.get("hyperbot-update-monitor.service")!.enabled, false);
  assert.ok(files.files.has(journal), "the journal recovery needs is still there");
  assert.ok(
    files.files.has("/etc/systemd/system/hyperbot-update-monitor.service"),
    "the unit stays, so the watcher can be started to finish the update",
  );
  assert.ok(files.files.has("/etc/hyperbot-ops/config.json"), "the config stays");
  assert.equal(cron.content, null, "the cron entry went first, so health cannot race the stop");

  // Once the update is finished (the journal is gone), uninstalling again removes it all.
  files.files.delete(journal);
  await applyActions(planUninstall(await readCurrentInstall(deps, desired), desired), deps);
  assert.ok(!files.dirs.has("/var/lib/hyperbot-ops"));
  assert.ok(!files.files.has("/etc/systemd/system/hyperbot-update-monitor.service"));
});

Deno.test("a journal marked finished does not hold uninstall back; an unreadable one does", () => {
  assert.equal(journalPending(null), false);
  assert.equal(journalPending({ content: '{"id":"u1","finished":true}', mode: 0o600 }), false);
  assert.equal(journalPending({ content: '{"id":"u1","step":"verify"}', mode: 0o600 }), true);
  assert.equal(journalPending({ content: "{not json", mode: 0o600 }), true);
});

Deno.test("uninstall removes the cron entry before it stops the service", async () => {
  const { deps } = setup();
  const s = settings();
  await install(deps, s);
  const desired = desiredInstall(s);
  const kinds = planUninstall(await readCurrentInstall(deps, desired), desired).map((a) =>
    a.kind === "remove" ? `remove ${a.role}` : a.kind
  );
  assert.deepEqual(kinds.slice(0, 3), ["remove cron", "disable-now", "require-no-journal"]);
});

Deno.test("uninstall keeps a config file that was there before install", async () => {
  const { deps, files } = setup();
  files.dirs.set("/etc/hyperbot-ops", 0o755);
  files.files.set("/etc/hyperbot-ops/config.json", {
    content: '{"baseDir":"/opt/bot"}\n',
    mode: 0o644,
  });
  await install(deps, settings());
  const desired = desiredInstall(settings());
  await applyActions(planUninstall(await readCurrentInstall(deps, desired), desired), deps);
  assert.ok(files.files.has("/etc/hyperbot-ops/config.json"));
  assert.ok(!files.files.has("/etc/systemd/system/hyperbot-update-monitor.service"));
});

Deno.test("uninstall without a manifest removes only files that carry the install mark", async () => {
  const { deps, files, cron } = setup();
  files.files.set("/etc/systemd/system/hyperbot-update-monitor.service", {
    content: "[Service]\nExecStart=/opt/my-own-script\n",
    mode: 0o644,
  });
  cron.content = "# Installed by 'hyperbot-ops install'\n*/5 * * * * root /x health\n";
  const desired = desiredInstall(settings());
  const actions = planUninstall(await readCurrentInstall(deps, desired), desired);
  assert.deepEqual(
    actions.filter((a) => a.kind === "remove").map((a) => a.kind === "remove" && a.role),
    ["cron"],
  );
});

Deno.test("with metricsFile, install creates its folder 0755, lets the sandboxed watcher write it and saves the key", async () => {
  const { deps, files } = setup();
  const file = "/var/lib/node_exporter/textfile_collector/hyperbot_ops.prom";
  const actions = await install(deps, settings({}, { metricsFile: file }));
  assert.ok(kinds(actions).includes("mkdir /var/lib/node_exporter/textfile_collector"));
  assert.equal(files.dirs.get("/var/lib/node_exporter/textfile_collector"), 0o755);
  const unit = files.files.get("/etc/systemd/system/hyperbot-update-monitor.service")!.content;
  assert.match(unit, /^ReadWritePaths=.* -\/var\/lib\/node_exporter\/textfile_collector$/m);
  assert.equal(
    JSON.parse(files.files.get("/etc/hyperbot-ops/config.json")!.content).metricsFile,
    file,
  );
  // Without it, neither the folder nor the path.
  const plain = desiredInstall(settings());
  assert.ok(!plain.dirs.some((d) => d.role === "metrics"));
});

/** A cron file at its path among the host's files, as /etc/cron.d holds them. */
class FilesCron implements CronTable {
  constructor(private files: MemoryFiles, readonly path: string) {}
  async read() {
    return (await this.files.read(this.path))?.content ?? null;
  }
  write(content: string) {
    return this.files.write(this.path, content, 0o644);
  }
  remove() {
    return this.files.remove(this.path);
  }
}

/** Installs one bot the way 'install --apply' does: the cron table at the desired path. */
async function installBot(files: MemoryFiles, services: FakeServiceManager, s: InstallSettings) {
  const desired = desiredInstall(s);
  const cronPath = desired.files.find((f) => f.role === "cron")!.path;
  const deps: InstallDeps = {
    files,
    services,
    cron: new FilesCron(files, cronPath),
    logger: new MemoryLogger(),
  };
  const actions = planInstall(await readCurrentInstall(deps, desired), desired);
  await applyActions(actions, deps);
  return { actions, cronPath };
}

function bot2(): InstallSettings {
  const flags = { baseDir: "/opt/bot2", service: "bot2", stateDir: "/var/lib/hyperbot-ops-bot2" };
  return settings({ configFile: "/etc/hyperbot-ops/bot2.json" }, flags);
}

Deno.test("a second bot's install keeps the first bot's cron entry: each service has its own cron file", async () => {
  const { files, services } = setup();
  const first = await installBot(files, services, settings());
  const second = await installBot(files, services, bot2());
  assert.equal(first.cronPath, "/etc/cron.d/hyperbot-ops", "the default service keeps its file");
  assert.equal(second.cronPath, "/etc/cron.d/hyperbot-ops-bot2");
  assert.equal(cronFileFor("bot.2@x"), "/etc/cron.d/hyperbot-ops-bot_2_x", "no dot: cron skips it");
  assert.match(
    files.files.get(first.cronPath)!.content,
    /--config \/etc\/hyperbot-ops\/config\.json$/m,
  );
  assert.match(
    files.files.get(second.cronPath)!.content,
    /--config \/etc\/hyperbot-ops\/bot2\.json$/m,
  );
  // Installing the first again changes nothing: its entry was never replaced.
  assert.deepEqual((await installBot(files, services, settings())).actions, []);
});

Deno.test("a second bot installed before per-service cron files moves its entry out of the shared file", async () => {
  const { files, services } = setup();
  await installBot(files, services, bot2());
  // What an earlier version left: bot2's manifest names the shared file, which holds its entry.
  const manifestPath = "/var/lib/hyperbot-ops-bot2/install-manifest.json";
  const manifest = JSON.parse(files.files.get(manifestPath)!.content);
  // The first bot had created it, so the second recorded it as preexisting.
  for (const f of manifest.files) {
    if (f.role === "cron") {
      Object.assign(f, { path: "/etc/cron.d/hyperbot-ops", preexisting: true });
    }
  }
  await files.write(manifestPath, JSON.stringify(manifest), 0o640);
  const shared = files.files.get("/etc/cron.d/hyperbot-ops-bot2")!;
  await files.write("/etc/cron.d/hyperbot-ops", shared.content, 0o644);

  const { actions } = await installBot(files, services, bot2());
  assert.ok(
    actions.some((a) => a.kind === "remove" && a.path === "/etc/cron.d/hyperbot-ops"),
    JSON.stringify(actions),
  );
  assert.equal(files.files.get("/etc/cron.d/hyperbot-ops"), undefined);
  assert.ok(files.files.get("/etc/cron.d/hyperbot-ops-bot2"));

  // When the first bot's install already took the shared file back, its entry stays.
  await files.write(
    "/etc/cron.d/hyperbot-ops",
    shared.content.replace("bot2.json", "config.json"),
    0o644,
  );
  await files.write(manifestPath, JSON.stringify(manifest), 0o640);
  const again = await installBot(files, services, bot2());
  assert.ok(!again.actions.some((a) => a.kind === "remove"), JSON.stringify(again.actions));
  assert.match(files.files.get("/etc/cron.d/hyperbot-ops")!.content, /config\.json$/m);

  // A file install did not write stays, whatever it runs.
  const foreign = shared.content.replace(/^# Installed by .*$/m, "# mine");
  await files.write("/etc/cron.d/hyperbot-ops", foreign, 0o644);
  await files.write(manifestPath, JSON.stringify(manifest), 0o640);
  const third = await installBot(files, services, bot2());
  assert.ok(!third.actions.some((a) => a.kind === "remove"), JSON.stringify(third.actions));
  assert.equal(files.files.get("/etc/cron.d/hyperbot-ops")!.content, foreign);
});

Deno.test("notify or metricsFile added after install: --apply again rewrites the unit, and the plan shows what it opens", async () => {
  const { deps, files, services } = setup();
  await install(deps, settings());
  const unitPath = "/etc/systemd/system/hyperbot-update-monitor.service";
  assert.match(files.files.get(unitPath)!.content, /^PrivateNetwork=yes$/m);

  const notify = [{ type: "webhook", url: "http://127.0.0.1:9/hook" }];
  const withNotify = settings({}, { notify, metricsFile: "/var/lib/prom/hyperbot.prom" });
  const desired = desiredInstall(withNotify);
  const actions = planInstall(await readCurrentInstall(deps, desired), desired);
  const plan = actions.map(describeAction).join("\n");
  assert.match(plan, /^create folder \/var\/lib\/prom \(mode 0755\)$/m);
  assert.match(plan, /^update unit file .*\n(\s+[-+] .*\n)*\s+- PrivateNetwork=yes$/m);
  for (
    const line of [
      "- RestrictAddressFamilies=AF_UNIX",
      "- IPAddressDeny=any",
      "+ RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
      "+ SocketBindDeny=any",
    ]
  ) {
    assert.ok(plan.includes(`\n      ${line}`), `${line} missing in:\n${plan}`);
  }
  assert.match(plan, /^ {6}\+ ReadWritePaths=.* -\/var\/lib\/prom$/m);
  assert.match(plan, /^systemctl restart hyperbot-update-monitor\.service \(.*unit.*changed\)$/m);
  await applyActions(actions, deps);
  const unit = files.files.get(unitPath)!.content;
  assert.doesNotMatch(unit, /^(PrivateNetwork|IPAddressDeny)=/m);
  assert.equal(files.dirs.get("/var/lib/prom"), 0o755);
  assert.ok(services.units.get("hyperbot-update-monitor.service"));
});
