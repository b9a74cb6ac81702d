/**
 * The real `hyperbot-ops watch` process under a flood of triggers in the two states where its
 * lines used to escape the budget: the status file cannot be written (the container made it a
 * folder), and the Docker daemon is away. Every line the triggers cause, in monitor.log and on
 * stderr, stays within the documented 20 a minute.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnCli } from "../support/cli.ts";
import { eventually, sleep } from "../support/wait.ts";
import type { Heartbeat } from "../../lib/watch/heartbeat.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const BUDGET = 20;
const REPO = "127.0.0.1:5000/hyperbot/app";
/**
 * The watcher's own lines (start, SIGTERM, stop, state changes, the idle memory release): not
 * caused by a trigger.
 */
const LIFECYCLE =
  /watch: (watch starting|watch stopped|watch state|stopping:|released start-up code pages)/;

async function setup(label: string, extra: string[] = []) {
  const base = await Deno.makeTempDir({ prefix: `hbt-budget-${label}-` });
  const dataDir = join(base, "data");
  const stateDir = join(base, "state");
  await Deno.mkdir(dataDir);
  await Deno.writeTextFile(join(base, "config.json"), "{}\n");
  const args = [
    "watch",
    "--config",
    join(base, "config.json"),
    "--base-dir",
    base,
    "--state-dir",
    stateDir,
    "--container",
    `hbt-budget-${label}`,
    "--allowed-image",
    REPO,
    ...extra,
  ];
  return { base, dataDir, stateDir, logDir: join(base, "logs"), args };
}

/** Runs the watcher, writes triggers the bot's way for `ms`, stops it; returns monitor.log and stderr. */
async function flood(
  s: Awaited<ReturnType<typeof setup>>,
  text: (i: number) => string,
  ms: number,
) {
  const child = spawnCli(s.args);
  let stderr = "";
  const drain = async (stream: ReadableStream<Uint8Array>, keep: boolean) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) if (keep) stderr += decoder.decode(chunk, { stream: true });
  };
  const drained = Promise.all([drain(child.stdout, false), drain(child.stderr, true)]);
  try {
    await eventually("watch ready", async () => {
      try {
        const hb = JSON.parse(
          await Deno.readTextFile(join(s.stateDir, "heartbeat.json")),
        ) as Heartbeat;
        return hb.pid === child.pid && hb.state !== "starting" && hb.state !== "recovering"
          ? true
          : null;
      } catch {
        return null;
      }
    }, { timeoutMs: 60_000, describe: () => stderr.slice(-3_000) });
    const trigger = join(s.dataDir, ".update_trigger");
    const end = Date.now() + ms;
    let written = 0;
    while (Date.now() < end) {
      const tmp = join(s.dataDir, `.tmp-${written}`);
      await Deno.writeTextFile(tmp, text(written));
      await Deno.rename(tmp, trigger);
      written++;
      await sleep(20);
    }
    await eventually("the last trigger claimed", async () => {
      try {
        await Deno.lstat(trigger);
        return null;
      } catch {
        return true;
      }
    }, { timeoutMs: 20_000, describe: () => stderr.slice(-3_000) });
    // Let the lines of the last claim be written.
    await sleep(500);
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await child.status;
    await drained;
  }
  const monitor = await Deno.readTextFile(join(s.logDir, "monitor.log"));
  const caused = (text: string) => text.split("\n").filter((l) => l.trim() && !LIFECYCLE.test(l));
  return { monitor: caused(monitor), stderr: caused(stderr) };
}

Deno.test(
  "bad triggers while the status file cannot be written: at most 20 lines in monitor.log and on stderr",
  opts,
  async () => {
    const s = await setup("status");
    try {
      // The container replaced the status file with a folder: every write of it fails.
      await Deno.mkdir(join(s.dataDir, ".update_status.json"));
      const { monitor, stderr } = await flood(s, (i) => `junk ${i}`, 5_000);
      assert.ok(monitor.length <= BUDGET, `${monitor.length} lines:\n${monitor.join("\n")}`);
      assert.ok(stderr.length <= BUDGET, `${stderr.length} stderr lines:\n${stderr.join("\n")}`);
      assert.ok(monitor.some((l) => /cannot write the status file/.test(l)), monitor.join("\n"));
    } finally {
      await Deno.remove(s.base, { recursive: true });
    }
  },
);

Deno.test(
  "triggers while the Docker daemon is away: at most 20 lines in monitor.log and on stderr",
  opts,
  async () => {
    const s = await setup("docker", ["--docker-host", "unix:///nonexistent/docker.sock"]);
    try {
      const { monitor, stderr } = await flood(
        s,
        (i) => JSON.stringify({ image: `${REPO}:v${i}`, id: `r${i}` }),
        5_000,
      );
      assert.ok(monitor.length <= BUDGET, `${monitor.length} lines:\n${monitor.join("\n")}`);
      assert.ok(stderr.length <= BUDGET, `${stderr.length} stderr lines:\n${stderr.join("\n")}`);
      assert.ok(monitor.some((l) => /Docker daemon unreachable/.test(l)), monitor.join("\n"));
    } finally {
      await Deno.remove(s.base, { recursive: true });
    }
  },
);
