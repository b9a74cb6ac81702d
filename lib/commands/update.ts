/**
 * `hyperbot-ops update`: one safe update of the bot container, from the command line.
 */

import type { PullProgress } from "../docker.ts";
import { RejectedError } from "../errors.ts";
import { loggerFor, setupLogging } from "../log.ts";
import { printableFields, printableJson } from "../printable.ts";
import { exitCodeOfOutcome, type UpdateReport } from "../update/report.ts";
import { runUpdate } from "../update/run.ts";
import { notifyUpdateEnded } from "../notify/hooks.ts";
import { CLI_DELIVERY_WAIT_MS } from "../notify/notifier.ts";
import { defineCommand } from "./common.ts";

export const updateCommand = defineCommand({
  name: "update",
  summary: "update the bot container once (safe: verify, roll back on failure)",
  usage: "[IMAGE] [--force | --rollback] [--no-pull] [--json]",
  description: `
Updates the bot container to IMAGE (default: re-pull the image it runs now) without leaving
it down: pulls while the old container runs, creates the new one beside it, swaps, verifies
(HEALTHCHECK healthy, or running with no restart for stableSeconds), and rolls back on failure.`,
  options: {
    force: { type: "boolean", help: "recreate even when the image has not changed" },
    rollback: {
      type: "boolean",
      help: "go back to the image that ran before the last successful update (no pull)",
    },
    "no-pull": {
      type: "boolean",
      help: "deploy IMAGE as it is on this host (built or 'docker load'ed here) without\n" +
        "pulling it; it must be present, or nothing is touched (exit 2)",
    },
    json: { type: "boolean", help: "print the report as JSON on stdout" },
  },
  positionals: 1,
  exitCodes: {
    0: "updated or unchanged",
    1: "rolled back or failed",
    2: "rejected or bad usage",
    3: "configuration error",
    4: "Docker unreachable or a Docker error",
    5: "another update is running",
  },
  async run({ values, positionals, config }, ctx) {
    const host = ctx.host(config());
    await setupLogging({ logDir: host.config.logDir, files: ["update"] });
    const deps = host.update(loggerFor("update"));
    const metrics = deps.metrics = host.metrics(loggerFor("update"), deps.docker);
    const progress = ctx.stderrIsTty && !values.json ? new PullProgressLine(ctx.stderr) : null;
    if (progress) deps.onPullProgress = (p) => progress.update(p);
    try {
      const report = await runUpdate(deps, host.config, {
        image: positionals[0] ?? null,
        force: Boolean(values.force),
        rollback: Boolean(values.rollback),
        noPull: Boolean(values["no-pull"]),
        source: "cli",
      });
      progress?.done();
      ctx.stdout(values.json ? printableJson(report, 2) : renderReport(report));
      const code = exitCodeOfOutcome(report.outcome);
      // The outcome, status file and exit code are settled: then notify, waiting at most
      // CLI_DELIVERY_WAIT_MS (what is not delivered stays queued for the watcher or health).
      const notifier = host.notifier(loggerFor("update"));
      if (notifier.enabled) {
        await notifyUpdateEnded(notifier, deps.journal, report);
        await notifier.deliverWithin(CLI_DELIVERY_WAIT_MS);
      }
      return code;
    } catch (err) {
      if (err instanceof RejectedError) {
        metrics.record({
          kind: "update",
          outcome: "rejected",
          finishedAt: new Date().toISOString(),
        });
      }
      throw err;
    } finally {
      progress?.done();
      await metrics.flush();
      host.close();
    }
  },
});

const MARK: Record<UpdateReport["outcome"], string> = {
  updated: "✅",
  unchanged: "✅",
  rolled_back: "❌",
  failed: "❌",
  rejected: "❌",
};

/** The report as the operator reads it. Pure. */
export function renderReport(raw: UpdateReport): string {
  // The error and warnings can quote a registry's answer or a container's output.
  const report = printableFields(raw, 2000);
  const lines = [`${MARK[report.outcome]} ${report.outcome}: ${report.container}`];
  lines.push(`  image:    ${report.image ?? "-"}`);
  lines.push(`  previous: ${report.previousImage ?? "-"}`);
  lines.push(`  running:  ${report.imageId ?? "-"}`);
  lines.push(
    `  downtime: ${
      report.downtimeMs === null ? "the bot is not running" : `${report.downtimeMs} ms`
    } (the update took ${(report.durationMs / 1000).toFixed(1)} s)`,
  );
  if (report.error) lines.push(`  error:    ${report.error}`);
  for (const w of report.warnings) lines.push(`  warning:  ${w}`);
  lines.push(
    `  steps:    ${
      report.steps.map((s) => `${s.name}${s.ok === false ? "(failed)" : ""}`).join(" → ")
    }`,
  );
  lines.push(`  id:       ${report.id}`);
  return lines.join("\n");
}

/** One status line on stderr, rewritten as layers download. Only on a TTY. */
class PullProgressLine {
  private readonly layers = new Map<string, { current: number; total: number; done: boolean }>();
  private last = 0;
  private shown = false;

  constructor(private readonly write: (text: string) => void) {}

  update(p: PullProgress) {
    if (p.id && p.id.length === 12) {
      const layer = this.layers.get(p.id) ?? { current: 0, total: 0, done: false };
      if (p.total) layer.total = p.total;
      if (p.current !== undefined && /Download/.test(p.status)) layer.current = p.current;
      if (/Pull complete|Already exists|Download complete/.test(p.status)) layer.done = true;
      this.layers.set(p.id, layer);
    }
    const now = Date.now();
    if (now - this.last < 100) return;
    this.last = now;
    const layers = [...this.layers.values()];
    const done = layers.filter((l) => l.done).length;
    const mb = (n: number) => (n / 1e6).toFixed(1);
    const current = layers.reduce((a, l) => a + (l.done ? l.total : l.current), 0);
    const total = layers.reduce((a, l) => a + l.total, 0);
    this.write(`\r\x1b[2Kpulling: ${done}/${layers.length} layers, ${mb(current)}/${mb(total)} MB`);
    this.shown = true;
  }

  done() {
    if (this.shown) this.write("\r\x1b[2K");
    this.shown = false;
  }
}
