import assert from "node:assert/strict";
import { SystemctlServiceManager } from "../../lib/adapters/systemctl.ts";
import type { CommandRunner, RunCommandOptions } from "../../lib/adapters/run_command.ts";
import { stopTimeoutSeconds } from "../../lib/install/plan.ts";
import { loadConfig } from "../../lib/config.ts";

/** A systemctl that answers at once and records how long each call was allowed to take. */
function recording(stopTimeoutSeconds?: number) {
  const calls: { args: string[]; timeoutMs?: number }[] = [];
  const runner: CommandRunner = (_cmd, args, options?: RunCommandOptions) => {
    calls.push({ args, timeoutMs: options?.timeoutMs });
    const stdout = args[0] === "show" ? "LoadState=loaded\nActiveState=active\n" : "";
    return Promise.resolve({ code: 0, stdout, stderr: "" });
  };
  return { calls, manager: new SystemctlServiceManager("systemctl", runner, stopTimeoutSeconds) };
}

for (const healthTimeoutSeconds of [120, 86_400]) {
  Deno.test(`start, stop and restart outwait TimeoutStopSec (healthTimeoutSeconds ${healthTimeoutSeconds})`, async () => {
    const config = loadConfig({
      env: {},
      readTextFile: () => null,
      flags: { healthTimeoutSeconds },
    });
    const { calls, manager } = recording(stopTimeoutSeconds(config));
    await manager.restart("hyperbot-update-monitor.service");
    await manager.enableNow("hyperbot-update-monitor.service");
    await manager.disableNow("hyperbot-update-monitor.service");
    await manager.status("hyperbot-update-monitor.service");
    const unitStopMs = stopTimeoutSeconds(config) * 1000;
    const byVerb = (verb: string) => calls.find((c) => c.args[0] === verb)!;
    for (const verb of ["restart", "enable", "disable"]) {
      const call = byVerb(verb);
      assert.ok(
        (call.timeoutMs ?? 0) > unitStopMs,
        `${verb}: ${call.timeoutMs} ms is not more than TimeoutStopSec (${unitStopMs} ms)`,
      );
    }
    // A query has no job to wait for: it keeps a short limit.
    assert.ok((byVerb("show").timeoutMs ?? Infinity) <= 90_000);
  });
}
