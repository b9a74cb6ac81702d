/**
 * `hyperbot-ops install` without --apply, run as the operator runs it: plain `install` and
 * `install --dry-run` print, and change nothing on disk (issue 13, promise 8).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_CRON_FILE, DEFAULT_LAUNCHER } from "../../lib/install/plan.ts";
import { UNIT_DIR } from "../../lib/install/unit.ts";
import { runCli } from "../support/cli.ts";
import { makeTempDirOutsideTmp, uniqueName } from "../support/env.ts";

/** Every path under `dir` with its size and mtime, and the state of the host files install writes. */
async function snapshot(dir: string, service: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      const st = await Deno.lstat(p);
      out.push(`${p} ${st.size} ${st.mtime?.getTime()} ${st.mode}`);
      if (e.isDirectory) await walk(p);
    }
  };
  await walk(dir);
  for (const p of [join(UNIT_DIR, `${service}.service`), DEFAULT_CRON_FILE, DEFAULT_LAUNCHER]) {
    const st = await Deno.lstat(p).catch(() => null);
    out.push(`${p} ${st ? `${st.size} ${st.mtime?.getTime()}` : "absent"}`);
  }
  return out;
}

for (const mode of [[], ["--dry-run"]]) {
  Deno.test(`install ${mode.join(" ") || "(plain)"} prints and changes nothing on disk`, async () => {
    const dir = await makeTempDirOutsideTmp("hyperbot-install-cli-");
    const service = uniqueName("install");
    try {
      const args = [
        "install",
        ...mode,
        "--config",
        join(dir, "etc", "config.json"),
        "--base-dir",
        join(dir, "base"),
        "--state-dir",
        join(dir, "state"),
        "--service",
        service,
        "--allowed-image",
        "registry.example.com/org/bot",
      ];
      const before = await snapshot(dir, service);
      const r = await runCli(args);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, mode.length ? /would install:/ : /Nothing was changed/);
      assert.match(r.stdout, new RegExp(`${service}\\.service`));
      assert.deepEqual(await snapshot(dir, service), before);
      assert.deepEqual(before.slice(0, -3), [], "the temp folder stays empty");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("install --metrics sets metricsFile to node_exporter's textfile folder, which the unit may write", async () => {
  const dir = await makeTempDirOutsideTmp("hyperbot-install-cli-");
  try {
    const r = await runCli([
      "install",
      "--metrics",
      "--config",
      join(dir, "etc", "config.json"),
      "--base-dir",
      join(dir, "base"),
      "--state-dir",
      join(dir, "state"),
      "--service",
      uniqueName("install"),
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ReadWritePaths=.* -\/var\/lib\/node_exporter\/textfile_collector$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("install with notify: the unit allows IPv4/IPv6 for the watcher, and no secret of a channel is printed", async () => {
  const dir = await makeTempDirOutsideTmp("hyperbot-install-cli-");
  try {
    const args = [
      "install",
      "--config",
      join(dir, "etc", "config.json"),
      "--base-dir",
      join(dir, "base"),
      "--state-dir",
      join(dir, "state"),
      "--service",
      uniqueName("install"),
    ];
    const env = {
      HYPERBOT_OPS_NOTIFY: JSON.stringify([
        { type: "wecom", url: "https://qyapi.example/send?key=SUPERSECRETKEY1" },
        { type: "telegram", token: "1:SUPERSECRETTOKEN", chatId: "1" },
      ]),
    };
    for (const mode of [[], ["--dry-run"]]) {
      const r = await runCli([...args, ...mode], { env });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.ok(!/SUPERSECRET/.test(r.stdout + r.stderr), r.stdout + r.stderr);
      if (mode.length === 0) {
        assert.match(r.stdout, /^RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6$/m);
        assert.doesNotMatch(r.stdout, /^PrivateNetwork=yes$/m);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
