import assert from "node:assert/strict";
import { isCronSchedule, quoteCron, renderCron, renderLauncher } from "../../lib/install/cron.ts";
import { quoteSystemd, renderUnit } from "../../lib/install/unit.ts";

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
  assert.match(launcher, /^export DENO_DIR="\$\{DENO_DIR:-\/root\/\.cache\/deno\}"$/m);
  assert.match(
    launcher,
    /^exec \/usr\/bin\/deno run --no-lock --allow-read --allow-run \/src\/hyperbot-ops\/main\.ts "\$@"$/m,
  );
});
