/**
 * `hyperbot-ops metrics`: the Prometheus exposition text the metrics file holds, on stdout.
 */

import { loggerFor } from "../log.ts";
import { defineCommand } from "./common.ts";

export const metricsCommand = defineCommand({
  name: "metrics",
  summary: "print the Prometheus metrics (the text metricsFile holds)",
  usage: "",
  description: `
Prints the metrics in the Prometheus text format: the counters kept in
<stateDir>/metrics.json, the bot container and its version, the watcher's heartbeat and
whether a rollback is pending. The same text that watch, update and health write to
metricsFile for node_exporter's textfile collector; this command changes nothing, and works
whether metricsFile is set or not (for a one-off look, or a node_exporter without the folder).`,
  options: {},
  exitCodes: { 0: "printed", 2: "bad usage", 3: "configuration error" },
  async run({ config }, ctx) {
    const host = ctx.host(config());
    try {
      // The text ends in a newline; stdout adds one more.
      ctx.stdout((await host.metrics(loggerFor("health")).render()).trimEnd());
      return 0;
    } finally {
      host.close();
    }
  },
});
