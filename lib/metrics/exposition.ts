/**
 * The metrics as Prometheus text exposition format 0.0.4 (what node_exporter's textfile
 * collector reads): one `# HELP` and one `# TYPE` line per metric family, then its samples,
 * no timestamps. Pure: the snapshot in, the text out.
 */

import { printable } from "../printable.ts";
import type { Counters } from "./counters.ts";
import { OUTCOMES } from "./counters.ts";

/** Longest label value, in characters, after the printable step (a container's label can be anything). */
export const MAX_LABEL_CHARS = 128;

/** Everything the exposition shows, gathered at one moment. */
export interface MetricsSnapshot {
  /** hyperbot-ops' own version. */
  version: string;
  counters: Counters;
  container: {
    name: string;
    /** Whether it exists (then image and version are known). */
    found: boolean;
    running: boolean;
    image: string | null;
    version: string | null;
  };
  /** Epoch seconds of the watcher's last heartbeat; null when it never wrote one. */
  heartbeatAt: number | null;
  /** The journal holds an update that no running process is finishing. */
  rollbackPending: boolean;
}

interface Family {
  name: string;
  type: "gauge" | "counter";
  help: string;
  samples: { labels?: Record<string, string>; value: number }[];
}

/** The families in the order they are written; the README documents each. */
export function metricFamilies(s: MetricsSnapshot): Family[] {
  const c = s.counters;
  const last = c.lastUpdate;
  return [
    {
      name: "hyperbot_ops_build_info",
      type: "gauge",
      help: "Always 1; the version label is the hyperbot-ops version.",
      samples: [{ labels: { version: s.version }, value: 1 }],
    },
    {
      name: "hyperbot_ops_updates_total",
      type: "counter",
      help: "Update requests that ended, by outcome.",
      samples: OUTCOMES.map((outcome) => ({ labels: { outcome }, value: c.updates[outcome] })),
    },
    {
      name: "hyperbot_ops_last_update_timestamp_seconds",
      type: "gauge",
      help: "When an update last ended with this outcome (Unix time; 0: never).",
      samples: OUTCOMES.map((outcome) => ({
        labels: { outcome },
        value: c.lastUpdateAt[outcome] ?? 0,
      })),
    },
    {
      name: "hyperbot_ops_last_update_duration_seconds",
      type: "gauge",
      help: "How long the last update that ran took, from start to end.",
      samples: last ? [{ value: last.durationSeconds }] : [],
    },
    {
      name: "hyperbot_ops_last_update_downtime_seconds",
      type: "gauge",
      help:
        "How long the bot was not running during the last update that ran, measured by the update (old container stopped to new one started).",
      samples: last && last.downtimeSeconds !== null ? [{ value: last.downtimeSeconds }] : [],
    },
    {
      name: "hyperbot_ops_container_info",
      type: "gauge",
      help: "Always 1; the bot container, its image and the version it runs.",
      samples: s.container.found
        ? [{
          labels: {
            container: s.container.name,
            image: s.container.image ?? "",
            version: s.container.version ?? "",
          },
          value: 1,
        }]
        : [],
    },
    {
      name: "hyperbot_ops_container_up",
      type: "gauge",
      help: "1 when the bot container is running, else 0.",
      samples: [{ value: s.container.running ? 1 : 0 }],
    },
    {
      name: "hyperbot_ops_watcher_heartbeat_timestamp_seconds",
      type: "gauge",
      help: "When the watcher last wrote its heartbeat (Unix time; 0: never).",
      samples: [{ value: s.heartbeatAt ?? 0 }],
    },
    {
      name: "hyperbot_ops_health_last_run_timestamp_seconds",
      type: "gauge",
      help: "When the health check last ran (Unix time; 0: never).",
      samples: [{ value: c.healthLastRunAt ?? 0 }],
    },
    {
      name: "hyperbot_ops_health_repairs_total",
      type: "counter",
      help: "Times the health check restarted a stopped, failed or hung watcher.",
      samples: [{ value: c.healthRepairs }],
    },
    {
      name: "hyperbot_ops_rollback_pending",
      type: "gauge",
      help:
        "1 when the journal holds an unfinished update that no process is finishing (the watcher retries it), else 0.",
      samples: [{ value: s.rollbackPending ? 1 : 0 }],
    },
    {
      name: "hyperbot_ops_triggers_rejected_total",
      type: "counter",
      help: "Update triggers from the bot's data folder that the watcher refused.",
      samples: [{ value: c.triggersRejected }],
    },
  ];
}

/** The exposition text of a snapshot, ending in a newline. */
export function renderExposition(snapshot: MetricsSnapshot): string {
  const lines: string[] = [];
  // A family with nothing to show (no container, no update yet) is left out whole.
  for (const f of metricFamilies(snapshot).filter((f) => f.samples.length > 0)) {
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`);
    lines.push(`# TYPE ${f.name} ${f.type}`);
    for (const sample of f.samples) {
      lines.push(`${f.name}${renderLabels(sample.labels)} ${formatValue(sample.value)}`);
    }
  }
  return lines.join("\n") + "\n";
}

function renderLabels(labels: Record<string, string> | undefined): string {
  if (!labels) return "";
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return `{${parts.join(",")}}`;
}

/**
 * A label value as the format wants it: made printable and capped (it can come from the
 * container), then `\`, `"` and line feed escaped.
 */
export function escapeLabelValue(value: string): string {
  return printable(value, MAX_LABEL_CHARS)
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/\n/g, "\\n");
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** Go's float formatting as Prometheus parses it: NaN, +Inf, -Inf, else the shortest decimal. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
