/**
 * install refuses folders under /tmp and /var/tmp (the service has PrivateTmp=yes: it would see
 * other, empty folders there): exit 3 naming the key, nothing written (issue 14, finding 3).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { refusePrivateTmpPaths } from "../../lib/install/private_tmp.ts";
import { ConfigError } from "../../lib/errors.ts";
import { runCli } from "../support/cli.ts";
import { makeTempDirOutsideTmp, uniqueName } from "../support/env.ts";

const OK = {
  baseDir: "/opt/trading-system",
  dataDir: "/opt/trading-system/data",
  logDir: "/opt/trading-system/logs",
  stateDir: "/var/lib/hyperbot-ops",
  metricsFile: "",
};
const noLinks = (path: string): string => {
  throw new Error(`not found: ${path}`);
};

Deno.test("each folder key under /tmp or /var/tmp is refused with its name; others pass", () => {
  refusePrivateTmpPaths(OK, "/etc/hyperbot-ops/config.json", noLinks);
  // A name that merely starts like /tmp is not under it.
  refusePrivateTmpPaths({ ...OK, baseDir: "/tmpfoo/bot" }, "/etc/x.json", noLinks);
  const cases: [string, Partial<typeof OK>, string][] = [
    ["baseDir", { baseDir: "/tmp/bot" }, "/etc/x.json"],
    ["dataDir", { dataDir: "/tmp" }, "/etc/x.json"],
    ["logDir", { logDir: "/var/tmp/logs" }, "/etc/x.json"],
    ["stateDir", { stateDir: "/var/tmp/state" }, "/etc/x.json"],
    ["metricsFile", { metricsFile: "/tmp/metrics/hyperbot.prom" }, "/etc/x.json"],
    ["--config", {}, "/tmp/config.json"],
    ["stateDir", { stateDir: "/opt/../tmp/state" }, "/etc/x.json"],
  ];
  for (const [key, change, configFile] of cases) {
    assert.throws(
      () => refusePrivateTmpPaths({ ...OK, ...change }, configFile, noLinks),
      (err: unknown) =>
        err instanceof ConfigError && err.exitCode === 3 && err.message.includes(`'${key}'`) &&
        err.message.includes("PrivateTmp"),
      key,
    );
  }
});

Deno.test("a folder that reaches /tmp through a link is refused too", () => {
  const links: Record<string, string> = { "/srv/bot": "/tmp/bot" };
  const realPath = (p: string) => {
    for (const [link, target] of Object.entries(links)) {
      if (p === link) return target;
    }
    if (p === "/srv" || p === "/tmp" || p === "/var" || p === "/var/tmp") return p;
    throw new Error(`not found: ${p}`);
  };
  assert.throws(
    () => refusePrivateTmpPaths({ ...OK, baseDir: "/srv/bot" }, "/etc/x.json", realPath),
    /'baseDir' \(\/srv\/bot\) is under \/tmp/,
  );
});

for (const mode of [["--dry-run"], []]) {
  Deno.test(`install ${mode.join(" ") || "(plain)"} with baseDir under /tmp exits 3 naming baseDir and writes nothing`, async () => {
    const dir = await makeTempDirOutsideTmp("hyperbot-private-tmp-");
    const base = `/tmp/${uniqueName("private-tmp")}`;
    try {
      const r = await runCli([
        "install",
        ...mode,
        "--config",
        join(dir, "etc", "config.json"),
        "--base-dir",
        base,
        "--state-dir",
        join(dir, "state"),
        "--service",
        uniqueName("install"),
      ]);
      assert.equal(r.code, 3, r.stdout + r.stderr);
      assert.match(r.stderr, /'baseDir' \(\/tmp\/[^)]+\) is under \/tmp/);
      assert.match(r.stderr, /PrivateTmp=yes/);
      assert.equal(r.stdout, "");
      assert.equal(await Deno.lstat(base).catch(() => null), null, "no folder created");
      assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing written");
    } finally {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(base, { recursive: true }).catch(() => {});
    }
  });
}
