import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config.ts";
import { ConfigError } from "../../lib/errors.ts";

const noFile = () => null;

Deno.test("defaults match today's servers", () => {
  const c = loadConfig({ env: {}, readTextFile: noFile });
  assert.equal(c.baseDir, "/opt/trading-system");
  assert.equal(c.dataDir, "/opt/trading-system/data");
  assert.equal(c.logDir, "/opt/trading-system/logs");
  assert.equal(c.stateDir, "/var/lib/hyperbot-ops");
  assert.equal(c.container, "trading-system-app");
  assert.equal(c.service, "hyperbot-update-monitor");
  assert.deepEqual(c.allowedImages, []);
  assert.equal(c.healthTimeoutSeconds, 120);
  assert.equal(c.stableSeconds, 10);
  assert.equal(c.keepImages, 2);
  assert.equal(c.dockerHost, "unix:///var/run/docker.sock");
  assert.equal(c.configFile, null);
});

Deno.test("flags override the environment, which overrides the file", () => {
  const file = JSON.stringify({ container: "from-file", baseDir: "/srv/bot", stableSeconds: 3 });
  const c = loadConfig({
    env: {
      HYPERBOT_OPS_CONTAINER: "from-env",
      HYPERBOT_OPS_STABLE_SECONDS: "4",
      DOCKER_HOST: "unix:///run/d.sock",
    },
    readTextFile: () => file,
    flags: { container: "from-flag" },
  });
  assert.equal(c.container, "from-flag");
  assert.equal(c.stableSeconds, 4);
  assert.equal(c.baseDir, "/srv/bot");
  assert.equal(c.dataDir, "/srv/bot/data", "dataDir follows baseDir");
  assert.equal(c.dockerHost, "unix:///run/d.sock");
  assert.equal(c.configFile, "/etc/hyperbot-ops/config.json");
});

Deno.test("allowedImages comes as a list from the file and comma-separated from the environment", () => {
  const c = loadConfig({
    env: { HYPERBOT_OPS_ALLOWED_IMAGES: "a.example.com/x, b.example.com/y" },
    readTextFile: noFile,
  });
  assert.deepEqual(c.allowedImages, ["a.example.com/x", "b.example.com/y"]);
  const d = loadConfig({
    env: {},
    readTextFile: () => '{"allowedImages": ["r.example.com/o/app"]}',
  });
  assert.deepEqual(d.allowedImages, ["r.example.com/o/app"]);
});

Deno.test("an unknown key in the config file is an error naming the file and the key", () => {
  const err = assert.throws(
    () =>
      loadConfig({ env: {}, configFile: "/etc/x.json", readTextFile: () => '{"contianer": "x"}' }),
    (e: unknown) =>
      e instanceof ConfigError && /contianer/.test(e.message) && e.object === "/etc/x.json",
  );
  void err;
});

Deno.test("malformed config files and values are clear errors", () => {
  const cases: [string, RegExp][] = [
    ["{not json", /not valid JSON/],
    ["[1,2]", /JSON object/],
    ['{"stableSeconds": -1}', /stableSeconds/],
    ['{"stableSeconds": "ten"}', /stableSeconds/],
    ['{"keepImages": 0}', /keepImages/],
    ['{"baseDir": "relative/path"}', /baseDir/],
    ['{"container": "bad name;rm"}', /container/],
    ['{"allowedImages": "not-a-list"}', /allowedImages/],
    ['{"dockerHost": "tcp://1.2.3.4:2375"}', /dockerHost/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(
      () => loadConfig({ env: {}, configFile: "/c.json", readTextFile: () => text }),
      (e: unknown) => e instanceof ConfigError && pattern.test(e.message) && e.object === "/c.json",
      text,
    );
  }
});

Deno.test("a missing config file is defaults, unless it was named explicitly", () => {
  assert.equal(loadConfig({ env: {}, readTextFile: noFile }).container, "trading-system-app");
  assert.throws(
    () => loadConfig({ env: {}, configFile: "/nope.json", readTextFile: noFile }),
    ConfigError,
  );
  assert.throws(
    () => loadConfig({ env: { HYPERBOT_OPS_CONFIG: "/nope.json" }, readTextFile: noFile }),
    ConfigError,
  );
});

Deno.test("a bad value from the environment names the variable", () => {
  assert.throws(
    () => loadConfig({ env: { HYPERBOT_OPS_KEEP_IMAGES: "many" }, readTextFile: noFile }),
    (e: unknown) => e instanceof ConfigError && e.object === "HYPERBOT_OPS_KEEP_IMAGES",
  );
});

Deno.test("an allowedImages entry that is not a repository is an error", () => {
  assert.throws(
    () =>
      loadConfig({
        env: {},
        configFile: "/c.json",
        readTextFile: () => '{"allowedImages": ["Bad Repo"]}',
      }),
    (e: unknown) => e instanceof ConfigError && /Bad Repo/.test(e.message),
  );
});

Deno.test("zero seconds of verification is refused", () => {
  for (const key of ["stableSeconds", "healthTimeoutSeconds"]) {
    assert.throws(
      () => loadConfig({ env: {}, configFile: "/c.json", readTextFile: () => `{"${key}": 0}` }),
      (e: unknown) => e instanceof ConfigError && e.message.includes(key),
    );
  }
});

/** The ConfigError loadConfig throws for these flags, or fails the test. */
function configErrorOf(flags: Partial<Record<string, string>>): ConfigError {
  try {
    loadConfig({ env: {}, readTextFile: noFile, realPath: Deno.realPathSync, flags });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail(`accepted ${JSON.stringify(flags)}`);
}

Deno.test("a stateDir or logDir inside dataDir is a configuration error naming both keys", () => {
  for (
    const [flags, key] of [
      [{ dataDir: "/srv/bot/data", stateDir: "/srv/bot/data/state" }, "stateDir"],
      [{ dataDir: "/srv/bot/data", logDir: "/srv/bot/data/logs" }, "logDir"],
      [{ dataDir: "/srv/bot/data", logDir: "/srv/bot/data" }, "logDir"],
      [{ dataDir: "/srv/bot/data", stateDir: "/srv/bot/state/../data/x" }, "stateDir"],
      [{ dataDir: "/srv/bot/logs/data", logDir: "/srv/bot/logs" }, "logDir"],
      [{ dataDir: "/var/lib/hyperbot-ops/shared" }, "stateDir"],
    ] as const
  ) {
    const err = configErrorOf(flags);
    assert.equal(err.exitCode, 3);
    assert.match(err.message, new RegExp(`'${key}'`), err.message);
    assert.match(err.message, /'dataDir'/, err.message);
  }
});

Deno.test("separate folders that only share a prefix are accepted", () => {
  const c = loadConfig({
    env: {},
    readTextFile: noFile,
    flags: { dataDir: "/srv/bot/data", logDir: "/srv/bot/data-logs", stateDir: "/srv/state" },
  });
  assert.equal(c.logDir, "/srv/bot/data-logs");
});

Deno.test("a logDir or stateDir that reaches into dataDir through a link is refused", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "hbt-config-link-" }));
  try {
    await Deno.mkdir(`${dir}/data/logs`, { recursive: true });
    await Deno.symlink(`${dir}/data/logs`, `${dir}/logs`);
    await Deno.symlink(`${dir}/data`, `${dir}/state-link`);
    const logs = configErrorOf({ dataDir: `${dir}/data`, logDir: `${dir}/logs`, stateDir: "/s" });
    assert.match(logs.message, /'logDir'.*'dataDir'/);
    // A folder not created yet below a link counts too.
    const state = configErrorOf({
      dataDir: `${dir}/data`,
      logDir: "/l",
      stateDir: `${dir}/state-link/state`,
    });
    assert.match(state.message, /'stateDir'.*'dataDir'/);
    // `..` after a link climbs from the link's target, as the kernel does.
    await Deno.mkdir(`${dir}/elsewhere/deep`, { recursive: true });
    await Deno.symlink(`${dir}/data/logs`, `${dir}/elsewhere/to-logs`);
    const dots = configErrorOf({
      dataDir: `${dir}/data`,
      logDir: `${dir}/elsewhere/to-logs/../x`,
      stateDir: "/s",
    });
    assert.match(dots.message, /'logDir'/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a configured path or docker host with a newline or other control character is refused", () => {
  for (
    const flags of [
      { dataDir: "/srv/data\nExecStartPre=/bin/id" },
      { logDir: "/srv/logs\r" },
      { stateDir: "/srv/state\u0085" },
      { baseDir: "/srv/\u202ebot" },
      { dockerHost: "unix:///run/docker.sock\nExecStartPre=/bin/id" },
    ]
  ) {
    const err = configErrorOf(flags);
    assert.equal(err.exitCode, 3);
    assert.match(err.message, new RegExp(`'${Object.keys(flags)[0]}'`));
  }
});
