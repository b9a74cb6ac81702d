/**
 * `hyperbot-ops update` run as the operator runs it, where it fails before anything is touched:
 * a typo on the command line must not read as a failed update (no status file, history, record
 * or updates_total{outcome="failed"}), so the fleet's 'failed last update' alert stays quiet.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, tempHost } from "../support/cli.ts";

function setup() {
  return tempHost("hyperbot-update-cli-");
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
