import assert from "node:assert/strict";
import { parseShow, type UnitAccess } from "../../lib/adapters/systemctl.ts";
import type { Config } from "../../lib/config.ts";
import { unitAccessProblems } from "../../lib/install/unit_access.ts";

const NOTIFY = [{ type: "webhook", name: "ops", url: "https://ops.example.com/h" }] as Config[
  "notify"
];
const OPEN: UnitAccess = {
  privateNetwork: false,
  restrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
  ipAddressDeny: [],
  ipAddressAllow: [],
  protectSystem: "strict",
  readWritePaths: ["/opt/bot", "/var/lib/hyperbot-ops", "/var/lib/prom"],
};
const needs = { service: "bot", notify: NOTIFY, metricsFile: "/var/lib/prom/m.prom" };

Deno.test("systemctl show's sandbox settings are parsed (as systemd 252 prints them)", () => {
  const s = parseShow(
    "x.service",
    "LoadState=loaded\nPrivateNetwork=yes\nRestrictAddressFamilies=AF_UNIX\n" +
      "IPAddressDeny=::/0 0.0.0.0/0\nProtectSystem=strict\nReadWritePaths=-/opt/x +/var/lib/x\n",
  );
  assert.deepEqual(s.access, {
    privateNetwork: true,
    restrictAddressFamilies: "AF_UNIX",
    ipAddressDeny: ["::/0", "0.0.0.0/0"],
    ipAddressAllow: [],
    protectSystem: "strict",
    readWritePaths: ["/opt/x", "/var/lib/x"],
  });
  assert.equal(
    parseShow("x.service", "LoadState=not-found\nPrivateNetwork=no\n").access,
    undefined,
  );
});

Deno.test("the unit's access problems: each way of shutting the network, and a metrics folder outside ReadWritePaths", () => {
  assert.deepEqual(unitAccessProblems(OPEN, needs), []);
  assert.deepEqual(unitAccessProblems(null, needs), [], "systemd did not say: no claim");
  const shut: [Partial<UnitAccess>, RegExp][] = [
    [{ privateNetwork: true }, /\(PrivateNetwork=yes\)/],
    [{ restrictAddressFamilies: "AF_UNIX" }, /\(RestrictAddressFamilies=AF_UNIX\)/],
    [{ restrictAddressFamilies: "~AF_INET AF_INET6" }, /RestrictAddressFamilies=~AF_INET AF_INET6/],
    [{ ipAddressDeny: ["::/0", "0.0.0.0/0"] }, /\(IPAddressDeny=any\)/],
  ];
  for (const [change, why] of shut) {
    const problems = unitAccessProblems({ ...OPEN, ...change }, needs);
    assert.equal(problems.length, 1, JSON.stringify(change));
    assert.match(
      problems[0],
      /^notify is configured, but bot\.service gives the watcher no network/,
    );
    assert.match(problems[0], why);
    // Without notify the closed network is what the unit should have.
    assert.deepEqual(unitAccessProblems({ ...OPEN, ...change }, { ...needs, notify: [] }), []);
  }
  // Families that leave one of IPv4/IPv6, or no restriction at all, are enough.
  for (const f of ["AF_UNIX AF_INET", "~AF_PACKET", "~", ""]) {
    assert.deepEqual(unitAccessProblems({ ...OPEN, restrictAddressFamilies: f }, needs), [], f);
  }
  const rw = unitAccessProblems(
    { ...OPEN, readWritePaths: ["/opt/bot", "/var/lib/prometheus"] },
    needs,
  );
  assert.equal(rw.length, 1);
  assert.match(rw[0], /folder \/var\/lib\/prom is not writable for bot\.service/);
  // A parent folder in ReadWritePaths covers it; without ProtectSystem=strict nothing is needed.
  assert.deepEqual(unitAccessProblems({ ...OPEN, readWritePaths: ["/var/lib"] }, needs), []);
  assert.deepEqual(
    unitAccessProblems({ ...OPEN, protectSystem: "full", readWritePaths: [] }, needs),
    [],
  );
});
