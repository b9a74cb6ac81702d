/**
 * `hyperbot-ops update` run as the operator runs it, where it fails before anything is touched:
 * a typo on the command line must not read as a failed update (no status file, history, record
 * or updates_total{outcome="failed"}), so the fleet's 'failed last update' alert stays quiet.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../support/cli.ts";

async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "hyperbot-update-cli-" });
  const dataDir = join(dir, "data");
  const logDir = join(dir, "logs");
  const stateDir = join(dir, "state");
  for (const d of [dataDir, logDir, stateDir]) await Deno.mkdir(d);
  const configFile = join(dir, "config.json");
  await Deno.writeTextFile(configFile, "{}");
  const args = [
    "--config",
    configFile,
    "--data-dir",
    dataDir,
    "--log-dir",
    logDir,
    "--state-dir",
    stateDir,
  ];
  return { dir, dataDir, stateDir, args };
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("update with an unreachable Docker host exits 4 and records no failed update", async () => {
  const { dir, dataDir, stateDir, args } = await setup();
  try {
    const out = await runCli([
      "update",
      ...args,
      "--docker-host",
      `unix://${join(dir, "nonexistent.sock")}`,
    ]);
    assert.equal(out.code, 4, out.stderr);
    assert.equal(await exists(join(dataDir, ".update_status.json")), false, "no status file");
    assert.equal(await exists(join(dataDir, ".update_history.jsonl")), false, "no history");
    assert.equal(await exists(join(stateDir, "last-result.json")), false, "no record");
    assert.equal(await exists(join(stateDir, "journal.json")), false, "no journal left");
    const metrics = await Deno.readTextFile(join(stateDir, "metrics.json")).catch(() => "{}");
    assert.doesNotMatch(metrics, /"failed"\s*:\s*[1-9]/, metrics);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("update --rollback --force is a usage error (exit 2) that touches nothing", async () => {
  const { dir, dataDir, stateDir, args } = await setup();
  try {
    const out = await runCli([
      "update",
      "--rollback",
      "--force",
      ...args,
      "--docker-host",
      `unix://${join(dir, "nonexistent.sock")}`,
    ]);
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, /--rollback and --force exclude each other/);
    assert.equal(await exists(join(dataDir, ".update_status.json")), false);
    assert.equal(await exists(join(stateDir, "journal.json")), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
