import assert from "node:assert/strict";
import { COMMANDS, main } from "../../main.ts";
import { type CliContext, type Command, defineCommand } from "../../lib/commands/common.ts";
import type { Config } from "../../lib/config.ts";
import { DockerError } from "../../lib/errors.ts";

/** A context that records what main prints and has no host: a test that reaches Docker fails. */
function testContext(files: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: CliContext = {
    env: {},
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
    stderrIsTty: false,
    color: false,
    selfCommand: ["/usr/local/bin/hyperbot-ops"],
    readTextFile: (path) => files[path] ?? null,
    realPath: (path) => path,
    host: () => {
      throw new Error("this test must not build real adapters");
    },
  };
  return { ctx, stdout: () => out.join("\n"), stderr: () => err.join("") };
}

/** A command that records the configuration it was given, or throws what it is told to. */
function probeCommand(seen: Config[], fail?: Error): Command {
  return defineCommand({
    name: "probe",
    summary: "records its config",
    usage: "",
    description: "A test command.",
    options: { json: { type: "boolean", help: "as JSON" } },
    exitCodes: { 0: "ok" },
    run({ config }) {
      seen.push(config());
      if (fail) throw fail;
      return Promise.resolve(0);
    },
  });
}

Deno.test("--help lists every command and the exit codes, and exits 0", async () => {
  const t = testContext();
  assert.equal(await main(["--help"], t.ctx), 0);
  for (const c of COMMANDS) assert.match(t.stdout(), new RegExp(`\\n  ${c.name} `));
  assert.match(t.stdout(), /^Usage: hyperbot-ops \[config flags\] <command> \[options\]$/m);
  assert.match(t.stdout(), /Exit codes:\n {2}0 .*\n {2}1 .*\n {2}2 .*\n {2}3 .*\n {2}4 .*\n {2}5 /);
  assert.equal(t.stderr(), "");
});

Deno.test("no command prints the usage and exits 2", async () => {
  const t = testContext();
  assert.equal(await main([], t.ctx), 2);
  assert.match(t.stdout(), /Usage: hyperbot-ops/);
});

Deno.test("every command's help has the one layout: Usage, Options with -h, Exit codes, config flags", async () => {
  for (const c of COMMANDS) {
    for (
      const args of [[c.name, "--help"], [c.name, "-h"], ["--config", "/x.json", c.name, "-h"]]
    ) {
      const t = testContext();
      assert.equal(await main(args, t.ctx), 0, args.join(" "));
      const help = t.stdout();
      const at = (heading: RegExp) => {
        const m = heading.exec(help);
        assert.ok(m, `${c.name}: no ${heading}`);
        return m.index;
      };
      const usage = at(new RegExp(`^Usage: hyperbot-ops ${c.name} .*\\[config flags\\]$`, "m"));
      const options = at(/^Options:$/m);
      const dashH = at(/^ {2}-h, --help +show this help$/m);
      const exits = at(/^Exit codes:\n {2}0 {2}\S/m);
      const config = at(/^Configuration flags .*\n(.*\n)* +--config FILE /m);
      assert.ok(usage < options && options < dashH && dashH < exits && exits < config, c.name);
    }
  }
});

Deno.test("-V prints the version", async () => {
  const t = testContext();
  assert.equal(await main(["-V"], t.ctx), 0);
  assert.match(t.stdout(), /^hyperbot-ops \d+\.\d+\.\d+/);
});

Deno.test("an unknown command exits 2 with an error and a hint on stderr", async () => {
  const t = testContext();
  assert.equal(await main(["stauts"], t.ctx), 2);
  assert.equal(t.stdout(), "");
  assert.match(t.stderr(), /^error: unknown command 'stauts'\nhint: .*--help/);
});

Deno.test("an unknown flag after the command exits 2 and names the flag and the command", async () => {
  const t = testContext();
  assert.equal(await main(["status", "--colour"], t.ctx), 2);
  assert.match(
    t.stderr(),
    /^error: .*'--colour'.*'status'\nhint: see 'hyperbot-ops status --help'/,
  );
});

Deno.test("a flag before the command that is not a config flag exits 2", async () => {
  for (const args of [["--force", "update"], ["--config"], ["-x", "status"]]) {
    const t = testContext();
    assert.equal(await main(args, t.ctx), 2, args.join(" "));
    assert.match(t.stderr(), /^error: /);
  }
});

Deno.test("an unexpected argument exits 2", async () => {
  const t = testContext();
  assert.equal(await main(["status", "extra"], t.ctx), 2);
  assert.match(t.stderr(), /unexpected argument 'extra'/);
});

Deno.test("config flags are accepted before the command name, as after it", async () => {
  const files = {
    "/etc/a.json": JSON.stringify({ container: "from-a" }),
    "/etc/b.json": JSON.stringify({ container: "from-b" }),
  };
  for (
    const [args, container] of [
      [["--config", "/etc/a.json", "probe"], "from-a"],
      [["--config=/etc/a.json", "probe", "--json"], "from-a"],
      [["probe", "--config", "/etc/a.json"], "from-a"],
      [["--container", "flag", "--config", "/etc/a.json", "probe"], "flag"],
      // Written after the command name wins, as with repeated flags.
      [["--config", "/etc/a.json", "probe", "--config", "/etc/b.json"], "from-b"],
    ] as const
  ) {
    const seen: Config[] = [];
    const t = testContext(files);
    assert.equal(await main([...args], t.ctx, [probeCommand(seen)]), 0, args.join(" "));
    assert.equal(seen[0].container, container, args.join(" "));
  }
});

Deno.test("--config before a real command reaches it: a missing file is a config error, exit 3", async () => {
  const t = testContext();
  assert.equal(await main(["--config", "/etc/none.json", "status"], t.ctx), 3);
  assert.match(t.stderr(), /^error: config file not found, '\/etc\/none.json'\nhint: /);
});

Deno.test("a typed error becomes its exit code, one error line with its object and cause, and a hint", async () => {
  const t = testContext();
  const fail = new DockerError("cannot reach the Docker daemon", {
    object: "/var/run/docker.sock",
    hint: "is docker running?",
    cause: new Error("connection refused"),
  });
  assert.equal(await main(["probe"], t.ctx, [probeCommand([], fail)]), 4);
  assert.equal(
    t.stderr(),
    "error: cannot reach the Docker daemon, '/var/run/docker.sock': connection refused\n" +
      "hint: is docker running?\n",
  );
});

Deno.test("an untyped error exits 1 with its message", async () => {
  const t = testContext();
  assert.equal(await main(["probe"], t.ctx, [probeCommand([], new TypeError("boom"))]), 1);
  assert.equal(t.stderr(), "error: boom\n");
});

Deno.test("every command exits 2 on a usage error: an unknown flag", async () => {
  for (const c of COMMANDS) {
    const t = testContext();
    assert.equal(await main([c.name, "--no-such-flag"], t.ctx), 2, c.name);
    assert.match(t.stderr(), /^error: .*no-such-flag/, c.name);
  }
});

Deno.test("every command exits 3 on a configuration error, before it touches the host", async () => {
  for (const c of COMMANDS) {
    for (
      const args of [
        ["--stable-seconds", "soon"],
        ["--docker-host", "tcp://10.0.0.1:2375"],
      ]
    ) {
      const t = testContext();
      // The context's host() throws: a command that reached it first would exit 1.
      assert.equal(await main([c.name, ...args], t.ctx), 3, `${c.name} ${args.join(" ")}`);
      assert.match(t.stderr(), /^error: /, c.name);
    }
  }
});

Deno.test("every command's help lists exit 2 and 3, which every command can give", async () => {
  for (const c of COMMANDS) {
    const t = testContext();
    assert.equal(await main([c.name, "--help"], t.ctx), 0, c.name);
    const codes = t.stdout().split(/^Exit codes:$/m)[1] ?? "";
    assert.match(codes, /^ {2}2 /m, `${c.name} --help names exit 2`);
    assert.match(codes, /^ {2}3 /m, `${c.name} --help names exit 3`);
  }
});
