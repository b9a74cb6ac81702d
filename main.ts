/**
 * hyperbot-ops: updates the HyperBot container safely, watches for update triggers,
 * checks and repairs the monitor, shows status, installs itself.
 *
 * argv -> command table. The only place that calls Deno.exit.
 */

import denoJson from "./deno.json" with { type: "json" };
import type { CliContext, Command } from "./lib/commands/common.ts";
import { describeError } from "./lib/errors.ts";
import { printable } from "./lib/printable.ts";
import { RUN_FLAGS } from "./lib/runtime_flags.ts";
import { closeLogging } from "./lib/log.ts";
import { updateCommand } from "./lib/commands/update.ts";
import { watchCommand } from "./lib/commands/watch.ts";
import { healthCommand } from "./lib/commands/health.ts";
import { statusCommand } from "./lib/commands/status.ts";
import { installCommand } from "./lib/commands/install.ts";

export const VERSION: string = denoJson.version;

const COMMANDS: Command[] = [
  updateCommand,
  watchCommand,
  healthCommand,
  statusCommand,
  installCommand,
];

function usage(): string {
  return `hyperbot-ops ${VERSION}: safe updates for the HyperBot container

Usage: hyperbot-ops <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(10)}${c.summary}`).join("\n")}

Options:
  -h, --help     show help (also after a command: hyperbot-ops update --help)
  -V, --version  print the version

Exit codes: 0 ok, 1 update failed/rolled back or check failed, 2 usage or rejected input,
3 configuration error, 4 Docker error, 5 another update is running.
`;
}

/** The command line that runs this program again: the compiled binary, or deno run … main.ts. */
function selfCommand(): string[] {
  const exe = Deno.execPath();
  if (!/(^|\/)deno$/.test(exe)) return [exe];
  const main = new URL(import.meta.url).pathname;
  return [exe, "run", ...RUN_FLAGS, main];
}

export async function main(args: string[]): Promise<number> {
  // Log files and state are not for other users; the status file sets its own mode for the bot.
  Deno.umask(0o027);
  const ctx: CliContext = {
    env: Deno.env.toObject(),
    stdout: (text) => console.log(text),
    isTty: Deno.stderr.isTerminal(),
    selfCommand: selfCommand(),
  };
  const [name, ...rest] = args;
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "-V" || name === "--version" || name === "version") {
    console.log(`hyperbot-ops ${VERSION}`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    console.error(`error: unknown command '${name}'\nhint: run 'hyperbot-ops --help' for the list`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(command.help);
    return 0;
  }
  try {
    return await command.run(rest, ctx);
  } catch (err) {
    const { message, hint, exitCode } = describeError(err);
    // An error can quote a registry's answer, a helper's name or a trigger: printable, bounded.
    console.error(`error: ${printable(message, 2000)}`);
    if (hint) console.error(`hint: ${printable(hint, 2000)}`);
    if (ctx.env.HYPERBOT_OPS_DEBUG && err instanceof Error) console.error(err.stack);
    return exitCode;
  } finally {
    await closeLogging().catch(() => {});
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
