/**
 * `hyperbot-ops health --no-fix` as the operator runs it: it changes nothing. Its check is
 * logged to health-check.log, but it writes no metrics (a manual check must not look like
 * cron's run).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, tempHost } from "../support/cli.ts";

Deno.test("health --no-fix logs its check but writes no metrics", async () => {
  const { dir, logDir, stateDir, args } = await tempHost("hyperbot-health-cli-");
  try {
    const out = await runCli([
      "health",
      "--no-fix",
      ...args,
      "--docker-host",
      `unix://${join(dir, "no-docker.sock")}`,
    ]);
    assert.equal(out.code, 1, out.stderr);
    assert.ok((await Deno.readTextFile(join(logDir, "health-check.log"))).length > 0, "logged");
    const exists = await Deno.stat(join(stateDir, "metrics.json")).then(() => true, () => false);
    assert.equal(exists, false, "no metrics.json");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
