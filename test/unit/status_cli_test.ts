/**
 * `hyperbot-ops status` run as the operator runs it, with a status file forged from inside the
 * bot (never shown), and a log and a recorded error quoting what the attacker wrote: what
 * reaches the terminal holds no escape, and `--json` stays valid JSON.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, tempHost } from "../support/cli.ts";

// deno-lint-ignore no-control-regex
const RAW_ESCAPE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
const TITLE = "\u001b]0;owned\u0007\u001b[2J";

async function hostileSetup() {
  const host = await tempHost("hyperbot-status-cli-");
  const { dir, dataDir, logDir, stateDir } = host;
  // Root's record: its error and image can quote what a registry or the container printed.
  await Deno.writeTextFile(
    join(stateDir, "last-result.json"),
    JSON.stringify({
      id: "u1",
      state: "failed",
      container: "bot",
      image: [TITLE, "\u009b2J", "\u202e"],
      previousImage: null,
      startedAt: "2026-01-05T10:00:00Z",
      finishedAt: { at: TITLE },
      error: [TITLE, "\u009d0;x\u009c"],
      warnings: [],
      steps: [],
    }),
  );
  // Forged from inside the bot: the status file is the bot's page, never the operator's view.
  await Deno.writeTextFile(
    join(dataDir, ".update_status.json"),
    JSON.stringify({
      id: "u2",
      state: "succeeded",
      container: "bot",
      image: "127.0.0.1:5000/hyperbot/app:v9-totally-fine",
      previousImage: null,
      startedAt: "2026-01-05T11:00:00Z",
      finishedAt: "2026-01-05T11:00:10Z",
      error: null,
      warnings: [],
      steps: [],
    }),
  );
  await Deno.writeTextFile(
    join(logDir, "monitor.log"),
    `INFO  watch: started\nERROR watch: ${TITLE}\u009b31m\u202eevil\n`,
  );
  const args = [
    ...host.args,
    "--docker-host",
    `unix://${join(dir, "no-docker.sock")}`,
  ];
  return { dir, args };
}

Deno.test("status ignores a status file forged in dataDir and prints hostile text without raw escapes", async () => {
  const { dir, args } = await hostileSetup();
  try {
    const out = await runCli(["status", ...args]);
    assert.equal(out.code, 1, out.stderr);
    assert.doesNotMatch(out.stdout, RAW_ESCAPE);
    assert.doesNotMatch(out.stderr, RAW_ESCAPE);
    assert.match(out.stdout, /Last update +failed/);
    assert.doesNotMatch(out.stdout, /totally-fine|succeeded/);
    assert.match(out.stdout, /ERROR watch: \\x1b\]0;owned\\x07\\x1b\[2J\\x9b31m\\u202eevil/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("status --json stays valid JSON with hostile text escaped", async () => {
  const { dir, args } = await hostileSetup();
  try {
    const out = await runCli(["status", "--json", ...args]);
    assert.equal(out.code, 1, out.stderr);
    assert.doesNotMatch(out.stdout, RAW_ESCAPE);
    const report = JSON.parse(out.stdout);
    assert.equal(typeof report.lastUpdate.error, "string");
    assert.equal(report.lastUpdate.state, "failed");
    assert.equal(report.lastUpdate.ok, false);
    assert.doesNotMatch(out.stdout, /totally-fine/);
    assert.doesNotMatch(report.lastUpdate.error, RAW_ESCAPE);
    assert.doesNotMatch(report.logs.monitor.lines.join("\n"), RAW_ESCAPE);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
