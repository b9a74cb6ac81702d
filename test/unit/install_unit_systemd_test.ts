/**
 * The rendered unit checked by systemd's own tools (systemd-analyze; systemd need not be PID 1).
 * Fails loudly when systemd-analyze is missing.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { renderUnit } from "../../lib/install/unit.ts";

const MAX_EXPOSURE = 3.0;

/** The unit without notify (no network), and with it (outgoing IPv4/IPv6 only). */
const VARIANTS = [{ name: "without notify", network: false }, {
  name: "with notify",
  network: true,
}];

async function writeUnit(network = false): Promise<{ dir: string; path: string }> {
  const dir = await Deno.makeTempDir({ prefix: "hbt-unit-" });
  const path = join(dir, "hyperbot-update-monitor.service");
  await Deno.writeTextFile(
    path,
    renderUnit({
      service: "hyperbot-update-monitor",
      // verify checks that ExecStart's program exists and is executable.
      executable: Deno.execPath(),
      configFile: "/etc/hyperbot-ops/config.json",
      readWritePaths: [
        "/opt/trading-system",
        "/opt/trading-system/data",
        "/opt/trading-system/logs",
        "/var/lib/hyperbot-ops",
      ],
      timeoutStopSec: 490,
      network,
    }),
  );
  return { dir, path };
}

async function analyze(args: string[]) {
  try {
    const out = await new Deno.Command("systemd-analyze", {
      args,
      env: { SYSTEMD_COLORS: "0", SYSTEMD_PAGER: "" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  } catch (err) {
    throw new Error(`systemd-analyze is needed for this test (apt-get install systemd): ${err}`);
  }
}

for (const variant of VARIANTS) {
  Deno.test(`systemd-analyze verify accepts the unit ${variant.name} without a warning`, async () => {
    const { dir, path } = await writeUnit(variant.network);
    try {
      const r = await analyze(["verify", path]);
      assert.equal(r.stderr.trim(), "", `systemd-analyze verify said:\n${r.stderr}`);
      assert.equal(r.code, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(
    `systemd-analyze security rates the unit ${variant.name} ${MAX_EXPOSURE} or better`,
    async () => {
      const { dir, path } = await writeUnit(variant.network);
      try {
        const r = await analyze(["security", "--offline=true", path]);
        const m = /Overall exposure level for [^:]+: (\d+(?:\.\d+)?)/.exec(r.stdout);
        assert.ok(m, `no exposure level in:\n${r.stdout}\n${r.stderr}`);
        const score = Number(m[1]);
        console.log(`exposure level ${variant.name}: ${score}`);
        assert.ok(score <= MAX_EXPOSURE, `exposure ${score} > ${MAX_EXPOSURE}:\n${r.stdout}`);
        if (variant.network) {
          // What the network rules leave open, and what they keep shut.
          assert.match(r.stdout, /✗ RestrictAddressFamilies=~AF_\(INET\|INET6\)/);
          assert.match(r.stdout, /✓ RestrictAddressFamilies=~AF_PACKET/);
          assert.match(r.stdout, /✓ RestrictAddressFamilies=~AF_NETLINK/);
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}
