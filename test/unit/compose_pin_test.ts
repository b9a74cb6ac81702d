/**
 * Pinning in the update: which outcomes touch the compose files (only a verified update and
 * `--rollback`), the `compose` modes, and the warning when a file cannot be edited.
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config.ts";
import { MemoryLogger } from "../../lib/log.ts";
import { runUpdate, type UpdateDeps } from "../../lib/update/run.ts";
import { recoverFromJournal } from "../../lib/update/recover.ts";
import { checkComposeAgreement } from "../../lib/compose/pin.ts";
import { detectComposeProject } from "../../lib/compose/project.ts";
import { newNotification, updateFields } from "../../lib/notify/events.ts";
import { renderText } from "../../lib/notify/messages.ts";
import { FakeComposeFiles } from "../fakes/compose.ts";
import { FakeDockerEngine, type FakeDockerOptions } from "../fakes/docker.ts";
import { FakeClock, FakeJournal, FakeLastUpdate, FakeLock, FakeStatus } from "../fakes/state.ts";

const REPO = "registry.example.com:5000/org/bot";
const V1 = `${REPO}:1.0`;
const V2 = `${REPO}:2.0`;
const BROKEN = `${REPO}:broken`;
const DIR = "/opt/trading-system";
const YML = `${DIR}/docker-compose.yml`;
const ENV = `${DIR}/.env`;
const COMPOSE_YML =
  `# trading bot\nservices:\n  app:\n    image:  "${V1}"   # keep\r\n    restart: always\n`;
const LABELS = {
  "com.docker.compose.project": "trading",
  "com.docker.compose.service": "app",
  "com.docker.compose.project.working_dir": DIR,
  "com.docker.compose.project.config_files": "docker-compose.yml",
  "com.docker.compose.version": "1.29.2",
};

function config(overrides: Record<string, unknown> = {}) {
  return loadConfig({
    env: {},
    readTextFile: () => null,
    flags: { container: "bot", stableSeconds: 2, healthTimeoutSeconds: 10, ...overrides },
  });
}

async function world(files: Record<string, string>, options: FakeDockerOptions = {}) {
  const docker = new FakeDockerEngine(options);
  for (const ref of [V1, V2, BROKEN]) docker.publishImage(ref, { Env: ["PATH=/bin"] });
  docker.addImage(V1, { Env: ["PATH=/bin"] });
  await docker.runContainer("bot", { Image: V1, Labels: LABELS });
  const compose = new FakeComposeFiles(files);
  const status = new FakeStatus();
  const logger = new MemoryLogger();
  const deps: UpdateDeps = {
    docker,
    credentials: { lookup: () => Promise.resolve(null) },
    clock: new FakeClock(),
    logger,
    lock: new FakeLock(),
    journal: new FakeJournal(),
    status,
    lastUpdate: new FakeLastUpdate(),
    pid: 4242,
    composeFiles: compose,
  };
  return { docker, compose, status, logger, deps };
}

Deno.test("a verified update pins the new image in the compose file, every other byte kept", async () => {
  const w = await world({ [YML]: COMPOSE_YML });
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated");
  assert.deepEqual(report.warnings, []);
  assert.equal(w.compose.files.get(YML), COMPOSE_YML.replace(V1, V2));
  assert.equal(w.compose.files.get(`${YML}.hyperbot-ops.bak`), COMPOSE_YML);
  assert.ok(w.logger.lines.some((r) => /pinned the image/.test(r.message)));
});

Deno.test("a verified update of ${BOT_IMAGE} rewrites the .env line", async () => {
  const env = `# image\nBOT_IMAGE=${V1}\nTZ=Asia/Shanghai\n`;
  const w = await world({
    [YML]: "services:\n  app:\n    image: ${BOT_IMAGE}\n",
    [ENV]: env,
  });
  await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(w.compose.files.get(ENV), env.replace(V1, V2));
  assert.deepEqual(w.compose.replaced, [ENV]);
});

Deno.test("update --rollback pins the image it went back to", async () => {
  const w = await world({ [YML]: COMPOSE_YML });
  await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  const back = await runUpdate(w.deps, config(), { rollback: true, source: "cli" });
  assert.equal(back.outcome, "updated");
  assert.equal(w.compose.files.get(YML), COMPOSE_YML);
  assert.deepEqual(w.compose.replaced, [YML, YML]);
});

Deno.test("rolled_back, failed and unchanged updates never touch the compose files", async () => {
  const cases: [string, FakeDockerOptions, string, string][] = [
    ["rolled_back", { exitAfterStart: new Map([[BROKEN, 1]]) }, BROKEN, "rolled_back"],
    ["failed (pull)", { failPull: new Map([[V2, "not_found" as const]]) }, V2, "failed"],
    ["unchanged", {}, V1, "unchanged"],
  ];
  for (const [name, options, image, outcome] of cases) {
    const w = await world({ [YML]: COMPOSE_YML }, options);
    const report = await runUpdate(w.deps, config(), { image, source: "cli" });
    assert.equal(report.outcome, outcome, name);
    assert.deepEqual(w.compose.replaced, [], name);
    assert.equal(w.compose.files.get(YML), COMPOSE_YML, name);
    assert.equal(w.compose.files.size, 1, `${name}: no backup`);
  }
});

Deno.test("compose: warn only warns, naming the file and line; compose: off does nothing", async () => {
  const w = await world({ [YML]: COMPOSE_YML });
  const report = await runUpdate(w.deps, config({ compose: "warn" }), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated");
  assert.deepEqual(w.compose.replaced, []);
  assert.match(report.warnings.join("\n"), new RegExp(`${YML} line 4 names ${V1}`));
  assert.deepEqual(w.status.current?.warnings, report.warnings);

  const off = await world({ [YML]: COMPOSE_YML });
  const quiet = await runUpdate(off.deps, config({ compose: "off" }), { image: V2, source: "cli" });
  assert.deepEqual(quiet.warnings, []);
  assert.deepEqual(off.compose.replaced, []);
});

Deno.test("a file that cannot be pinned changes nothing and warns in the report, status file and update.log", async () => {
  const yml = "services:\n  app:\n    image: ${BOT_IMAGE}\n";
  const w = await world({ [YML]: yml, [ENV]: "OTHER=1\n" });
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated");
  assert.deepEqual(w.compose.replaced, []);
  const warning = report.warnings.join("\n");
  assert.match(warning, new RegExp(`compose file not pinned, ${YML} line 3: BOT_IMAGE is not set`));
  assert.match(warning, new RegExp(`to name ${V2}`));
  assert.deepEqual(w.status.current?.warnings, report.warnings);
  assert.ok(
    w.logger.lines.some((r) => r.level === "warn" && /compose file not pinned/.test(r.message)),
  );
});

Deno.test("a compose file that is a symbolic link is not pinned and the warning names it", async () => {
  const w = await world({ [YML]: COMPOSE_YML });
  w.compose.unreadable.set(YML, `${YML} is a symbolic link; edit the file it points to by hand`);
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated");
  assert.match(report.warnings.join("\n"), /symbolic link.*by hand to/);
  assert.equal(w.compose.files.get(YML), COMPOSE_YML);
});

Deno.test("status agreement: agrees, disagrees, cannot tell", async () => {
  const files = new FakeComposeFiles({ [YML]: COMPOSE_YML });
  const yes = await checkComposeAgreement(files, detectComposeProject(LABELS, {}), V1);
  assert.equal(yes?.agrees, true);
  assert.equal(yes?.line, 4);
  const no = await checkComposeAgreement(files, detectComposeProject(LABELS, {}), V2);
  assert.equal(no?.agrees, false);
  assert.equal(no?.composeImage, V1);
  files.files.set(YML, "services:\n  app:\n    image: ${X}\n");
  const unknown = await checkComposeAgreement(files, detectComposeProject(LABELS, {}), V2);
  assert.equal(unknown?.agrees, null);
  assert.match(unknown?.reason ?? "", /X is not set/);
  assert.equal(await checkComposeAgreement(files, detectComposeProject({ a: "b" }, {}), V2), null);
});

Deno.test("compose labels that came with the image are not trusted: nothing edited, a warning", async () => {
  const w = await world({ [YML]: COMPOSE_YML });
  // A hostile image names host files through labels; Docker shows them on its containers.
  w.docker.publishImage(V2, { Env: ["PATH=/bin"], Labels: LABELS });
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  assert.equal(report.outcome, "updated");
  assert.deepEqual(w.compose.replaced, []);
  assert.match(report.warnings.join("\n"), /the image itself carries com.docker.compose/);
});

Deno.test("an update killed after verification and finished by recovery pins; one killed before does not", async () => {
  for (const [step, pinned] of [["cleanup", true], ["verify", false]] as const) {
    const w = await world({ [YML]: COMPOSE_YML });
    let reached = false;
    const dying: UpdateDeps = {
      ...w.deps,
      beforeStep: (s) => {
        if (s !== step) return;
        reached = true;
        return new Promise<void>(() => {}); // never returns: the process is gone
      },
    };
    void runUpdate(dying, config(), { image: V2, source: "trigger" });
    for (let i = 0; i < 200 && !reached; i++) await new Promise((r) => setTimeout(r, 0));
    assert.ok(reached, step);
    assert.deepEqual(w.compose.replaced, [], `${step}: nothing pinned before the end`);
    const report = await recoverFromJournal({ ...w.deps, lock: new FakeLock() }, config());
    assert.equal(report?.outcome, pinned ? "updated" : "rolled_back", step);
    assert.equal(w.compose.files.get(YML), pinned ? COMPOSE_YML.replace(V1, V2) : COMPOSE_YML);
  }
});

Deno.test("a recovery that finishes forward and cannot pin says so in its report's warnings", async () => {
  const w = await world({ [YML]: "services:\n  app:\n    image: ${BOT_IMAGE}\n" });
  let reached = false;
  const dying: UpdateDeps = {
    ...w.deps,
    beforeStep: (s) => {
      if (s !== "cleanup") return;
      reached = true;
      return new Promise<void>(() => {});
    },
  };
  void runUpdate(dying, config(), { image: V2, source: "trigger" });
  for (let i = 0; i < 200 && !reached; i++) await new Promise((r) => setTimeout(r, 0));
  const report = await recoverFromJournal({ ...w.deps, lock: new FakeLock() }, config());
  assert.equal(report?.outcome, "updated");
  assert.match(
    report?.warnings.join("\n") ?? "",
    /compose file not pinned, .*docker-compose.yml line 3: BOT_IMAGE is not set/,
  );
});

Deno.test("the compose warning reaches the update's notification (en and zh), naming file and line", async () => {
  const w = await world({ [YML]: "services:\n  app:\n    image: ${BOT_IMAGE}\n" });
  const report = await runUpdate(w.deps, config(), { image: V2, source: "cli" });
  const n = newNotification({
    ...updateFields(report),
    event: "update",
    at: report.finishedAt,
    host: "srv1",
    container: report.container,
  });
  for (const [language, word] of [["en", "warning"], ["zh", "警告"]] as const) {
    const text = renderText(n, language);
    assert.match(
      text,
      new RegExp(`⚠️ ${word}: compose file not pinned, ${YML} line 3: BOT_IMAGE is not set`),
    );
  }
  // An entry queued by an older version (no warnings field) still renders.
  const { warnings: _, ...old } = n;
  assert.doesNotMatch(renderText(old, "en"), /warning/);
});
