/**
 * Wall time of `hyperbot-ops health --no-fix` and `hyperbot-ops status`, each a fresh process
 * as cron or an operator runs it, against a sandbox with a live watcher and a bot container.
 * Here systemd is not PID 1, so both report the service as unknown; `--no-fix` keeps health
 * from trying to restart it. The code paths are the real ones (systemctl, cron file,
 * heartbeat, Engine API inspect, log tails).
 */

import { cli, median, percentile } from "./support.ts";

export interface CommandTiming {
  command: string;
  runs: number;
  medianMs: number;
  p90Ms: number;
  exitCodes: string;
}

export async function measureCommand(
  label: string,
  args: string[],
  runs: number,
): Promise<CommandTiming> {
  const times: number[] = [];
  const codes = new Set<number>();
  await cli(args); // warm the module cache once, as a server's second run would be
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const out = await cli(args);
    times.push(performance.now() - t0);
    if (out.code !== 0 && out.code !== 1) {
      throw new Error(`${label} exited ${out.code}: ${out.stderr}`);
    }
    codes.add(out.code);
  }
  return {
    command: label,
    runs,
    medianMs: median(times),
    p90Ms: percentile(times, 90),
    exitCodes: [...codes].sort().join(", "),
  };
}
