import assert from "node:assert/strict";
import { canonicalHost, DockerConfigCredentialStore } from "../../lib/adapters/credentials.ts";
import type { CommandRunner, RunCommandOptions } from "../../lib/adapters/run_command.ts";
import { ConfigError, errorText } from "../../lib/errors.ts";
import { loadConfig } from "../../lib/config.ts";
import { MemoryLogger } from "../../lib/log.ts";
import { runUpdate } from "../../lib/update/run.ts";
import { FakeDockerEngine } from "../fakes/docker.ts";
import { FakeClock, FakeJournal, FakeLastUpdate, FakeLock, FakeStatus } from "../fakes/state.ts";

const FILE = "/cfg/config.json";

function store(
  config: unknown,
  run?: CommandRunner,
  calls: [string, string[], RunCommandOptions?][] = [],
) {
  return new DockerConfigCredentialStore({
    env: { DOCKER_CONFIG: "/cfg", PATH: "/usr/bin" },
    readTextFile: (path) => {
      assert.equal(path, FILE);
      return config === null ? null : typeof config === "string" ? config : JSON.stringify(config);
    },
    run: run ?? ((cmd, args, options) => {
      calls.push([cmd, args, options]);
      return Promise.resolve({
        code: 1,
        stdout: "credentials not found in native keychain\n",
        stderr: "",
      });
    }),
  });
}

Deno.test("the config file is $DOCKER_CONFIG/config.json, else ~/.docker/config.json", () => {
  assert.equal(
    new DockerConfigCredentialStore({ env: { DOCKER_CONFIG: "/x" } }).configFile,
    "/x/config.json",
  );
  assert.equal(
    new DockerConfigCredentialStore({ env: { HOME: "/home/u" } }).configFile,
    "/home/u/.docker/config.json",
  );
});

Deno.test("a missing config file means no credentials", async () => {
  assert.equal(await store(null).lookup("registry.example.com"), null);
});

Deno.test("a malformed config file is a ConfigError naming the file", async () => {
  await assert.rejects(store("{not json").lookup("r.example.com"), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.object, FILE);
    return true;
  });
  await assert.rejects(store({ auths: [] }).lookup("r.example.com"), ConfigError);
});

Deno.test("an auths entry gives the user and password of its base64 auth", async () => {
  const auth = btoa("bot:pa:ss");
  const s = store({ auths: { "registry.example.com:5000": { auth } } });
  assert.deepEqual(await s.lookup("registry.example.com:5000"), {
    username: "bot",
    password: "pa:ss",
    serveraddress: "registry.example.com:5000",
  });
  assert.equal(await s.lookup("other.example.com"), null);
});

Deno.test("auths keys match with or without scheme and trailing /v1/", async () => {
  const s = store({
    auths: {
      "https://registry.example.com/v1/": { auth: btoa("a:b") },
      "http://10.0.0.1:5000/": { identitytoken: "tok" },
    },
  });
  assert.equal((await s.lookup("registry.example.com"))?.username, "a");
  assert.deepEqual(await s.lookup("10.0.0.1:5000"), {
    identitytoken: "tok",
    serveraddress: "10.0.0.1:5000",
  });
});

Deno.test("Docker Hub credentials are found under https://index.docker.io/v1/", async () => {
  const s = store({ auths: { "https://index.docker.io/v1/": { auth: btoa("hub:pw") } } });
  for (const host of ["docker.io", "index.docker.io", "registry-1.docker.io"]) {
    assert.deepEqual(await s.lookup(host), {
      username: "hub",
      password: "pw",
      serveraddress: "https://index.docker.io/v1/",
    });
  }
  assert.equal(canonicalHost("https://index.docker.io/v1/"), "docker.io");
});

Deno.test("a credHelpers entry runs docker-credential-<name> get with the server on stdin", async () => {
  const calls: [string, string[], RunCommandOptions?][] = [];
  const s = store(
    { credHelpers: { "registry.example.com": "ecr" }, credsStore: "pass" },
    (cmd, args, options) => {
      calls.push([cmd, args, options]);
      return Promise.resolve({
        code: 0,
        stdout: '{"Username":"AWS","Secret":"s3cret"}',
        stderr: "",
      });
    },
  );
  assert.deepEqual(await s.lookup("registry.example.com"), {
    username: "AWS",
    password: "s3cret",
    serveraddress: "registry.example.com",
  });
  assert.equal(calls[0][0], "docker-credential-ecr");
  assert.deepEqual(calls[0][1], ["get"]);
  assert.equal(calls[0][2]?.stdin, "registry.example.com");
});

Deno.test("a helper's <token> username means an identity token", async () => {
  const s = store({ credsStore: "desktop" }, () =>
    Promise.resolve({
      code: 0,
      stdout: '{"Username":"<token>","Secret":"idtok"}',
      stderr: "",
    }));
  assert.deepEqual(await s.lookup("docker.io"), {
    identitytoken: "idtok",
    serveraddress: "https://index.docker.io/v1/",
  });
});

Deno.test("a helper that has nothing stored falls back to the auths entry", async () => {
  const calls: [string, string[], RunCommandOptions?][] = [];
  const s = store(
    { credsStore: "pass", auths: { "r.example.com": { auth: btoa("u:p") } } },
    undefined,
    calls,
  );
  assert.equal((await s.lookup("r.example.com"))?.username, "u");
  assert.equal(calls[0][0], "docker-credential-pass");
  assert.equal(
    await store({ credsStore: "pass", auths: { "r.example.com": {} } }).lookup("r.example.com"),
    null,
  );
});

Deno.test("a failing or missing helper is a ConfigError that names the helper", async () => {
  const failing = store(
    { credsStore: "pass" },
    () => Promise.resolve({ code: 1, stdout: "", stderr: "gpg: decryption failed" }),
  );
  await assert.rejects(failing.lookup("r.example.com"), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /docker-credential-pass failed: exit code 1$/);
    return true;
  });
  const missing = store(
    { credsStore: "nope" },
    () => Promise.reject(new Deno.errors.NotFound("no such file")),
  );
  await assert.rejects(missing.lookup("r.example.com"), /docker-credential-nope failed: not found/);
});

const SECRET = "s3cr3t-T0ken-value";

Deno.test("nothing a failing helper prints reaches the error: it names the helper and its exit code", async () => {
  for (
    const answer of [
      { code: 1, stdout: `{"Username":"bot","Secret":"${SECRET}"}`, stderr: `auth ${SECRET}` },
      { code: 3, stdout: SECRET, stderr: "" },
      { code: 0, stdout: `not json ${SECRET}`, stderr: SECRET },
      { code: 0, stdout: `"${SECRET}"`, stderr: "" },
      { code: 0, stdout: `{"Username":["${SECRET}"],"Secret":{"x":"${SECRET}"}}`, stderr: "" },
    ]
  ) {
    const s = store({ credsStore: "leaky" }, () => Promise.resolve(answer));
    await assert.rejects(s.lookup("r.example.com"), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const all = `${errorText(err)} ${err.hint} ${err.stack} ${JSON.stringify(err)}`;
      assert.ok(!all.includes(SECRET), `leaked: ${all}`);
      assert.match(
        err.message,
        new RegExp(`docker-credential-leaky failed: exit code ${answer.code}`),
      );
      return true;
    });
  }
});

Deno.test("a helper that runs out of time is named, and nothing it printed is shown", async () => {
  const s = store(
    { credsStore: "slow" },
    () => Promise.resolve({ code: 124, stdout: SECRET, stderr: SECRET }),
  );
  await assert.rejects(s.lookup("r.example.com"), (err: unknown) => {
    assert.ok(!errorText(err).includes(SECRET));
    assert.match(errorText(err), /docker-credential-slow failed: no answer within/);
    return true;
  });
});

Deno.test("an update whose helper echoes the secret and fails keeps it out of the status file, the history and the logs", async () => {
  const clock = new FakeClock();
  const docker = new FakeDockerEngine({ now: () => clock.now() });
  const image = "registry.example.com/org/bot";
  docker.addImage(`${image}:1`, {});
  docker.publishImage(`${image}:2`, {});
  await docker.runContainer("bot", { Image: `${image}:1` });
  const status = new FakeStatus();
  const logger = new MemoryLogger();
  const report = await runUpdate(
    {
      docker,
      credentials: store({ credsStore: "leaky" }, () =>
        Promise.resolve({
          code: 1,
          stdout: `{"ServerURL":"registry.example.com","Username":"bot","Secret":"${SECRET}"}`,
          stderr: `error: cannot store ${SECRET}`,
        })),
      clock,
      logger,
      lock: new FakeLock(),
      journal: new FakeJournal(),
      status,
      lastUpdate: new FakeLastUpdate(),
      pid: 1,
    },
    loadConfig({ env: {}, readTextFile: () => null, flags: { container: "bot" } }),
    { image: `${image}:2`, source: "trigger" },
  );
  assert.equal(report.outcome, "failed");
  assert.match(report.error ?? "", /docker-credential-leaky failed: exit code 1/);
  const everything = JSON.stringify([report, status.current, status.history, logger.lines]);
  assert.ok(!everything.includes(SECRET), everything);
  assert.ok(status.history.length > 0 && status.current !== null);
});
