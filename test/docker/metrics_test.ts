/**
 * The metrics with the real components: `hyperbot-ops update`, `health` and `watch` as
 * subprocesses write metricsFile; Debian's `promtool` accepts it; a real node_exporter
 * (`prometheus-node-exporter`, textfile collector on a folder of this test, 127.0.0.1 only)
 * serves our series; a real Prometheus server scraping it answers a PromQL query for
 * hyperbot_ops_container_info with the version the bot runs. Both servers are started here on
 * ephemeral ports and stopped at the end. Needs `bash scripts/test-env.sh` (engine, registry,
 * the two packages); fails loudly without it.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, spawnCli } from "../support/cli.ts";
import {
  docker,
  dockerOk,
  IMAGES,
  requireTestEnv,
  TEST_DOCKER_CONFIG,
  uniqueName,
} from "../support/env.ts";
import { eventually } from "../support/wait.ts";

await requireTestEnv();

const opts = { sanitizeOps: false, sanitizeResources: false };

/** A port that was free a moment ago on 127.0.0.1 (node_exporter and Prometheus need a number). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Starts a server binary; throws a clear error when the package is missing. */
function startServer(bin: string, args: string[], logPath: string): Deno.ChildProcess {
  try {
    return new Deno.Command("sh", {
      args: ["-c", `exec "$0" "$@" >>'${logPath}' 2>&1`, bin, ...args],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch (err) {
    throw new Error(`${bin} cannot start (bash scripts/test-env.sh installs it): ${err}`);
  }
}

async function requireBinary(bin: string, pkg: string) {
  const found = await new Deno.Command("sh", { args: ["-c", `command -v ${bin}`], stdout: "null" })
    .output();
  if (found.code !== 0) {
    throw new Error(`${bin} not found: install Debian's ${pkg} (bash scripts/test-env.sh does)`);
  }
}

async function stop(child: Deno.ChildProcess | null) {
  if (!child) return;
  try {
    child.kill("SIGTERM");
  } catch { /* already gone */ }
  await child.status;
}

function sampleValue(text: string, series: string): number | null {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? null : Number(line.slice(series.length + 1));
}

Deno.test(
  "node_exporter serves the metrics of an update, a health run and the watcher, and Prometheus answers which version runs",
  opts,
  async () => {
    await requireBinary("promtool", "prometheus");
    await requireBinary("prometheus", "prometheus");
    await requireBinary("prometheus-node-exporter", "prometheus-node-exporter");
    const name = uniqueName("hbt-metrics");
    const base = await Deno.makeTempDir({ prefix: `${name}-` });
    const textDir = join(base, "textfile_collector");
    const metricsFile = join(textDir, "hyperbot_ops.prom");
    await Deno.mkdir(join(base, "data"));
    const cli = [
      "--base-dir",
      base,
      "--state-dir",
      join(base, "state"),
      "--container",
      name,
      "--stable-seconds",
      "1",
      "--health-timeout",
      "20",
      "--keep-images",
      "50",
      "--metrics-file",
      metricsFile,
      "--config",
      join(base, "config.json"),
    ];
    await Deno.writeTextFile(join(base, "config.json"), "{}\n");
    const env = { DOCKER_CONFIG: TEST_DOCKER_CONFIG };
    let exporter: Deno.ChildProcess | null = null;
    let prometheus: Deno.ChildProcess | null = null;
    let watcher: Deno.ChildProcess | null = null;
    try {
      await dockerOk("run", "-d", "--name", name, "-v", `${join(base, "data")}:/data`, IMAGES.v1);

      // An update: the file is written before the command exits.
      const update = await runCli(["update", IMAGES.v2, ...cli], { env });
      assert.equal(update.code, 0, update.stderr);
      let text = await Deno.readTextFile(metricsFile);
      assert.equal((await Deno.stat(metricsFile)).mode! & 0o777, 0o644);
      assert.equal(sampleValue(text, 'hyperbot_ops_updates_total{outcome="updated"}'), 1);
      const downtime = sampleValue(text, "hyperbot_ops_last_update_downtime_seconds");
      assert.ok(downtime !== null && downtime > 0 && downtime < 30, `downtime ${downtime}`);
      const status = JSON.parse(await Deno.readTextFile(join(base, "data", ".update_status.json")));
      assert.equal(downtime, status.downtimeMs / 1000, "the file and the status file agree");

      // A health run as cron runs it (health --no-fix records no metrics). The service is this
      // test's own name: no systemd unit of that name exists, so it reports, changes nothing,
      // and the run is counted all the same.
      await runCli(["health", "--service", name, ...cli], { env });
      text = await Deno.readTextFile(metricsFile);
      const healthAt = sampleValue(text, "hyperbot_ops_health_last_run_timestamp_seconds");
      assert.ok(healthAt !== null && Math.abs(healthAt - Date.now() / 1000) < 120, `${healthAt}`);

      // The watcher: its heartbeat and a rejected trigger reach the file while it runs.
      watcher = spawnCli(["watch", ...cli], { env });
      await Deno.writeTextFile(join(base, "data", ".update_trigger"), "not an image reference!\n");
      text = await eventually("the rejected trigger in the metrics file", async () => {
        const t = await Deno.readTextFile(metricsFile);
        return sampleValue(t, "hyperbot_ops_triggers_rejected_total") === 1 ? t : null;
      }, { timeoutMs: 30_000 });
      assert.ok(sampleValue(text, "hyperbot_ops_watcher_heartbeat_timestamp_seconds")! > 0);
      await stop(watcher);
      watcher = null;

      // `hyperbot-ops metrics` prints the same series (the heartbeat has moved on meanwhile).
      const printed = await runCli(["metrics", ...cli], { env });
      assert.equal(printed.code, 0, printed.stderr);
      const file = await Deno.readTextFile(metricsFile);
      for (
        const series of [
          'hyperbot_ops_updates_total{outcome="updated"}',
          "hyperbot_ops_triggers_rejected_total",
          "hyperbot_ops_container_up",
        ]
      ) {
        assert.equal(sampleValue(printed.stdout, series), sampleValue(file, series), series);
      }

      const check = await new Deno.Command("promtool", {
        args: ["check", "metrics"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = check.stdin.getWriter();
      await writer.write(await Deno.readFile(metricsFile));
      await writer.close();
      const checked = await check.output();
      assert.equal(
        checked.code,
        0,
        new TextDecoder().decode(checked.stdout) + new TextDecoder().decode(checked.stderr),
      );

      // node_exporter with only the textfile collector, on our folder, on loopback.
      const exporterPort = freePort();
      exporter = startServer("prometheus-node-exporter", [
        `--web.listen-address=127.0.0.1:${exporterPort}`,
        "--collector.disable-defaults",
        "--collector.textfile",
        `--collector.textfile.directory=${textDir}`,
      ], join(base, "node_exporter.log"));
      const scraped = await eventually("node_exporter's /metrics", async () => {
        const r = await fetch(`http://127.0.0.1:${exporterPort}/metrics`);
        const body = await r.text();
        return r.ok && body.includes("hyperbot_ops_container_info") ? body : null;
      }, { timeoutMs: 30_000, describe: () => Deno.readTextFile(join(base, "node_exporter.log")) });
      assert.match(
        scraped,
        new RegExp(
          `hyperbot_ops_container_info\\{container="${name}",image="[^"]+:v2",version="2"\\} 1`,
        ),
      );
      assert.match(scraped, /hyperbot_ops_health_last_run_timestamp_seconds \d/);
      assert.match(scraped, /hyperbot_ops_updates_total\{outcome="updated"\} 1/);
      // node_exporter reports a textfile it could not parse with this gauge set to 1.
      assert.match(scraped, /node_textfile_scrape_error 0/);

      // A real Prometheus scraping it: PromQL answers which version runs where.
      const promPort = freePort();
      await Deno.writeTextFile(
        join(base, "prometheus.yml"),
        [
          "global: { scrape_interval: 1s, evaluation_interval: 1s }",
          "scrape_configs:",
          "  - job_name: node",
          "    static_configs:",
          `      - targets: ["127.0.0.1:${exporterPort}"]`,
          "        labels: { fleet: test }",
          "",
        ].join("\n"),
      );
      prometheus = startServer("prometheus", [
        `--config.file=${join(base, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(base, "tsdb")}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ], join(base, "prometheus.log"));
      const result = await eventually("Prometheus to answer the PromQL query", async () => {
        const q = encodeURIComponent(`hyperbot_ops_container_info{fleet="test"}`);
        const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${q}`);
        const body = await r.json();
        return body?.data?.result?.length ? body.data.result : null;
      }, { timeoutMs: 60_000, describe: () => Deno.readTextFile(join(base, "prometheus.log")) });
      assert.equal(result.length, 1);
      assert.equal(result[0].metric.version, "2");
      assert.equal(result[0].metric.container, name);
      assert.equal(result[0].metric.instance, `127.0.0.1:${exporterPort}`);
    } finally {
      await stop(watcher);
      await stop(exporter);
      await stop(prometheus);
      await docker("rm", "-f", name, `${name}-previous`, `${name}-updating`);
      await Deno.remove(base, { recursive: true }).catch(() => {});
    }
  },
);
