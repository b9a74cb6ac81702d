/**
 * `hyperbot-ops notify --test`: one test message to every configured channel and the ping URL,
 * one line each (delivered, or why not).
 */

import { UsageError } from "../errors.ts";
import { loggerFor, setupLogging } from "../log.ts";
import { printable } from "../printable.ts";
import { defineCommand } from "./common.ts";

export const notifyCommand = defineCommand({
  name: "notify",
  summary: "send a test notification to every channel and the ping URL",
  usage: "--test",
  description: `
Sends a test message to every channel in 'notify' (webhook, telegram, dingtalk, feishu,
wecom) and requests the ping URL ('pingUrl'), right now and without the outbox, and prints one
line per channel: delivered, or why not. Secrets (tokens, keys in URLs) are shown as ***.
HTTPS_PROXY, HTTP_PROXY and NO_PROXY are honoured.`,
  options: {
    test: { type: "boolean", help: "send the test message (required)" },
  },
  exitCodes: {
    0: "every channel (and the ping URL) took the message",
    1: "at least one did not, or nothing is configured",
    2: "bad usage",
    3: "configuration error",
  },
  async run({ values, config }, ctx) {
    // A bad configuration is named first (exit 3), as by every command.
    const cfg = config();
    if (!values.test) {
      throw new UsageError("notify needs --test", {
        object: "notify",
        hint: "hyperbot-ops notify --test",
      });
    }
    const host = ctx.host(cfg);
    await setupLogging({ logDir: host.config.logDir, files: [], stderrLevel: "warning" });
    try {
      const notifier = host.notifier(loggerFor("status"));
      const results = await notifier.sendTest();
      const ping = await notifier.ping(true);
      if (ping) results.push(ping);
      if (results.length === 0) {
        ctx.stdout(
          "nothing to test: no 'notify' channels and no 'pingUrl' in the configuration",
        );
        return 1;
      }
      const width = Math.max(...results.map((r) => r.channel.length));
      for (const r of results) {
        const mark = ctx.color ? (r.ok ? "✅ " : "❌ ") : "";
        const what = r.ok ? "delivered" : `not delivered: ${printable(r.error ?? "?", 300)}`;
        ctx.stdout(`${mark}${r.channel.padEnd(width)}  ${r.type.padEnd(8)} ${r.target}  ${what}`);
      }
      return results.every((r) => r.ok) ? 0 : 1;
    } finally {
      host.close();
    }
  },
});
