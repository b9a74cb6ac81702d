import assert from "node:assert/strict";
import { isCronSchedule, quoteCron, renderCron, renderLauncher } from "../../lib/install/cron.ts";
import { quoteSystemd, quoteSystemdPath, renderUnit } from "../../lib/install/unit.ts";
import { ConfigError } from "../../lib/errors.ts";
import { join } from "node:path";

const UNIT = {
  service: "hyperbot-update-monitor",
  executable: "/usr/local/bin/hyperbot-ops",
  configFile: "/etc/hyperbot-ops/config.json",
  readWritePaths: ["/opt/trading-system", "/opt/trading-system/data", "/var/lib/hyperbot-ops"],
  timeoutStopSec: 490,
};

Deno.test("the unit runs the executable's watch command with the config file", () => {
  const unit = renderUnit(UNIT);
  assert.match(
    unit,
    /^ExecStart=\/usr\/local\/bin\/hyperbot-ops watch --config \/etc\/hyperbot-ops\/config\.json$/m,
  );
});

Deno.test("the unit restarts always after 10 s, after and wanting docker, wanted by multi-user", () => {
  const unit = renderUnit(UNIT);
  for (
    const line of [
      "Restart=always",
      "RestartSec=10",
      "After=docker.service network-online.target",
      "Wants=docker.service",
      "WantedBy=multi-user.target",
      "TimeoutStopSec=490",
      "StartLimitIntervalSec=0",
    ]
  ) {
    assert.ok(unit.split("\n").includes(line), `missing: ${line}`);
  }
});

Deno.test("the unit makes the system read-only except the folders the watcher writes", () => {
  const unit = renderUnit(UNIT);
  assert.match(unit, /^ProtectSystem=strict$/m);
  assert.match(
    unit,
    /^ReadWritePaths=-\/opt\/trading-system -\/opt\/trading-system\/data -\/var\/lib\/hyperbot-ops$/m,
  );
  assert.match(unit, /^ProtectHome=read-only$/m);
  assert.match(unit, /^RestrictAddressFamilies=AF_UNIX$/m);
  assert.match(unit, /^NoNewPrivileges=yes$/m);
});

Deno.test("unit words with spaces, quotes, % and $ are quoted for systemd", () => {
  assert.equal(quoteSystemd("/usr/bin/x"), "/usr/bin/x");
  assert.equal(quoteSystemd("/opt/my bot"), '"/opt/my bot"');
  assert.equal(quoteSystemd("/opt/100%"), "/opt/100%%");
  assert.equal(quoteSystemd("/opt/$HOME"), "/opt/$$HOME");
  assert.equal(quoteSystemd('/a "b"'), '"/a \\"b\\""');
});

Deno.test("the cron entry runs health as root every 5 minutes with a PATH and a header", () => {
  const cron = renderCron({
    executable: "/usr/local/bin/hyperbot-ops",
    configFile: "/etc/hyperbot-ops/config.json",
  });
  const lines = cron.split("\n");
  assert.ok(lines[0].startsWith("# Installed by 'hyperbot-ops install'"));
  assert.ok(lines.some((l) => l.startsWith("PATH=/usr/local/sbin:/usr/local/bin:")));
  assert.ok(
    lines.includes(
      "*/5 * * * * root /usr/local/bin/hyperbot-ops health --quiet --config /etc/hyperbot-ops/config.json",
    ),
  );
  assert.ok(cron.endsWith("\n"), "cron ignores a last line without a newline");
});

Deno.test("the cron schedule can be changed and is validated", () => {
  const cron = renderCron({ executable: "/x", configFile: "/c.json", schedule: "* * * * *" });
  assert.match(cron, /^\* \* \* \* \* root \/x health/m);
  assert.throws(() => renderCron({ executable: "/x", configFile: "/c", schedule: "@reboot" }));
  assert.ok(isCronSchedule("*/5 * * * *"));
  assert.ok(!isCronSchedule("* * * *"));
  assert.ok(!isCronSchedule("* * * * * rm -rf /"));
});

Deno.test("cron words are shell-quoted and % is escaped", () => {
  assert.equal(quoteCron("/opt/my bot/x"), "'/opt/my bot/x'");
  assert.equal(quoteCron("/opt/50%"), "'/opt/50\\%'");
  assert.equal(quoteCron("it's"), "'it'\\''s'");
});

Deno.test("the compiled binary needs no launcher", () => {
  assert.equal(renderLauncher(["/usr/local/bin/hyperbot-ops"], null), null);
});

Deno.test("the launcher execs deno run with the same flags, no lock file, and the Deno cache", () => {
  const launcher = renderLauncher(
    ["/usr/bin/deno", "run", "--allow-read", "--allow-run", "/src/hyperbot-ops/main.ts"],
    "/root/.cache/deno",
  )!;
  assert.ok(launcher.startsWith("#!/bin/sh\n"));
  assert.match(
    launcher,
    /^if \[ -z "\$\{DENO_DIR:-\}" \]; then DENO_DIR=\/root\/\.cache\/deno; fi\nexport DENO_DIR$/m,
  );
  assert.match(
    launcher,
    /^exec \/usr\/bin\/deno run --no-lock --allow-read --allow-run \/src\/hyperbot-ops\/main\.ts "\$@"$/m,
  );
});

/** Runs a rendered launcher with sh; the stand-in for deno writes the DENO_DIR it got to `out`. */
async function runLauncher(denoDir: string, env: Record<string, string> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "hbt-launcher-" });
  const fakeDeno = join(dir, "deno");
  const out = join(dir, "out");
  await Deno.writeTextFile(fakeDeno, `#!/bin/sh\nprintf '%s' "$DENO_DIR" > '${out}'\n`);
  await Deno.chmod(fakeDeno, 0o755);
  const launcher = join(dir, "launcher");
  await Deno.writeTextFile(launcher, renderLauncher([fakeDeno, "run", "/src/main.ts"], denoDir)!);
  const r = await new Deno.Command("/bin/sh", { args: [launcher], env, clearEnv: true }).output();
  return { dir, code: r.code, got: await Deno.readTextFile(out).catch(() => null) };
}

Deno.test("a DENO_DIR with $(), backquotes and quotes is a value for the launcher, never a command", async () => {
  const marker = await Deno.makeTempFile();
  await Deno.remove(marker);
  const hostile = `/tmp/d$(touch ${marker})\`touch ${marker}\`"'\\ x`;
  const { dir, code, got } = await runLauncher(hostile);
  try {
    assert.equal(code, 0);
    assert.equal(got, hostile);
    assert.equal(await Deno.stat(marker).then(() => true, () => false), false, "the shell ran it");
    // A DENO_DIR the caller sets still wins.
    const other = await runLauncher(hostile, { DENO_DIR: "/elsewhere" });
    assert.equal(other.got, "/elsewhere");
    await Deno.remove(other.dir, { recursive: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a newline in a path cannot inject a line into the unit or the cron entry: it is refused", () => {
  const base = {
    service: "hyperbot-update-monitor",
    executable: "/usr/local/bin/hyperbot-ops",
    configFile: "/etc/hyperbot-ops/config.json",
    readWritePaths: ["/opt/trading-system"],
    timeoutStopSec: 60,
  };
  const injected = "/etc/x.json\nExecStartPre=/bin/sh -c 'id > /tmp/pwned'";
  assert.throws(() => renderUnit({ ...base, configFile: injected }), ConfigError);
  assert.throws(
    () => renderUnit({ ...base, readWritePaths: [`/opt/a\nExecStartPre=/x`] }),
    ConfigError,
  );
  assert.throws(() => renderUnit({ ...base, executable: "/usr/bin/x\r" }), ConfigError);
  assert.throws(
    () => renderCron({ executable: "/x", configFile: "/c\n* * * * * root id" }),
    ConfigError,
  );
  assert.throws(() => quoteCron("/a\u0085b"), ConfigError);
});

Deno.test("ReadWritePaths escapes % but leaves $ alone (systemd expands no variables there)", () => {
  assert.equal(quoteSystemdPath("/opt/$bot/100%"), "/opt/$bot/100%%");
  assert.equal(quoteSystemdPath("/opt/my bot"), '"/opt/my bot"');
  const unit = renderUnit({
    service: "s",
    executable: "/x",
    configFile: "/c",
    readWritePaths: ["/opt/$bot"],
    timeoutStopSec: 60,
  });
  assert.match(unit, /^ReadWritePaths=-\/opt\/\$bot$/m);
});

Deno.test("the unit has no network unless notify is configured; with it, IPv4/IPv6 sockets only", () => {
  const closed = renderUnit(UNIT).split("\n");
  for (
    const line of ["RestrictAddressFamilies=AF_UNIX", "PrivateNetwork=yes", "IPAddressDeny=any"]
  ) {
    assert.ok(closed.includes(line), `missing: ${line}`);
  }
  const open = renderUnit({ ...UNIT, network: true }).split("\n");
  assert.ok(open.includes("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"));
  assert.ok(!open.some((l) => /^(PrivateNetwork|IPAddressDeny)=/.test(l)));
  // Outgoing only: nothing may listen.
  assert.ok(open.includes("SocketBindDeny=any"));
  assert.ok(!closed.some((l) => l.startsWith("SocketBindDeny=")), "AF_UNIX only needs no rule");
  // Everything else stays as hardened.
  assert.deepEqual(
    open.filter((l) => !l.startsWith("#") && !/^(RestrictAddressFamilies|SocketBindDeny)=/.test(l)),
    closed.filter((l) =>
      !l.startsWith("#") && !/^(RestrictAddressFamilies|PrivateNetwork|IPAddressDeny)=/.test(l)
    ),
  );
});
