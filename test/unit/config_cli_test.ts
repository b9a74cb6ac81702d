/**
 * The folder checks of the configuration as an operator meets them: the command refuses with
 * exit 3 and names both keys before it touches anything.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../support/cli.ts";

Deno.test("status and update refuse a logDir inside dataDir (through a link) with exit 3 naming both keys, creating nothing", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "hbt-config-cli-" }));
  try {
    const dataDir = join(dir, "data");
    await Deno.mkdir(dataDir);
    await Deno.symlink(dataDir, join(dir, "logs-link"));
    await Deno.writeTextFile(join(dir, "config.json"), "{}");
    for (const command of [["status"], ["update", "--no-pull"]]) {
      const r = await runCli([
        ...command,
        "--config",
        join(dir, "config.json"),
        "--data-dir",
        dataDir,
        "--log-dir",
        join(dir, "logs-link", "logs"),
        "--state-dir",
        join(dir, "state"),
        "--docker-host",
        `unix://${join(dir, "no-docker.sock")}`,
      ]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /'logDir'.*inside 'dataDir'/);
    }
    assert.deepEqual([...Deno.readDirSync(dataDir)], [], "nothing was created in dataDir");
    assert.equal(await Deno.stat(join(dir, "state")).then(() => true, () => false), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a relative --config that is not found is named by the absolute path tried", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "hbt-config-cli-" }));
  try {
    const r = await runCli(["status", "--config", "./x.json"], { cwd: dir });
    assert.equal(r.code, 3, r.stderr);
    assert.ok(
      r.stderr.includes(`error: config file not found, '${join(dir, "x.json")}'`),
      r.stderr,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
