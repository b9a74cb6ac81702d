/**
 * hyperbot-ops: updates the HyperBot container safely, watches for update triggers,
 * checks and repairs the monitor, shows status, installs itself.
 *
 * argv -> command table. The only place that calls Deno.exit. A command is one file in
 * lib/commands/ (see the pattern at the top of lib/commands/common.ts) plus one line in COMMANDS.
 */

import denoJson from "./deno.json" with { type: "json" };
import {
  type CliContext,
  type Command,
  renderExitCodes,
  splitGlobalArgs,
} from "./lib/commands/common.ts";
import { describeError, EXIT_CODES } from "./lib/errors.ts";
import { printable } from "./lib/printable.ts";
import { RUN_FLAGS } from "./lib/runtime_flags.ts";
import { closeLogging } from "./lib/log.ts";
import { Host } from "./lib/adapters/host.ts";
import {
  readTextFileOrNull,
  realPath,
  stderrIsTerminal,
  stdoutIsTerminal,
  workingDir,
  writeStderr,
} from "./lib/adapters/process.ts";
import { updateCommand } from "./lib/commands/update.ts";
import { watchCommand } from "./lib/commands/watch.ts";
import { healthCommand } from "./lib/commands/health.ts";
import { statusCommand } from "./lib/commands/status.ts";
import { installCommand } from "./lib/commands/install.ts";
import { metricsCommand } from "./lib/commands/metrics.ts";
import { notifyCommand } from "./lib/commands/notify.ts";

export const VERSION: string = denoJson.version;

export const COMMANDS: readonly Command[] = [
  updateCommand,
  watchCommand,
  healthCommand,
  statusCommand,
  installCommand,
  metricsCommand,
  notifyCommand,
];

export function usage(commands: readonly Command[] = COMMANDS): string {
  return `hyperbot-ops ${VERSION}: safe updates for the HyperBot container

Usage: hyperbot-ops [config flags] <command> [options]

Commands:
${commands.map((c) => `  ${c.name.padEnd(10)}${c.summary}`).join("\n")}

Options:
  -h, --help     show help (also after a command: hyperbot-ops update --help)
  -V, --version  print the version

Exit codes:
${renderExitCodes(EXIT_CODES)}

Configuration flags (--config FILE and one per setting) go before or after the command;
'hyperbot-ops <command> --help' lists them.`;
}

/** The command line that runs this program again: the compiled binary, or deno run … main.ts. */
function selfCommand(): string[] {
  const exe = Deno.execPath();
  if (!/(^|\/)deno$/.test(exe)) return [exe];
  const main = new URL(import.meta.url).pathname;
  return [exe, "run", ...RUN_FLAGS, main];
}

/** The context of a real run: this process's environment, streams and adapters. */
export function realContext(): CliContext {
  const env = Deno.env.toObject();
  return {
    env,
    stdout: (text) => console.log(text),
    stderr: writeStderr,
    stderrIsTty: stderrIsTerminal(),
    color: stdoutIsTerminal() && !env.NO_COLOR,
    selfCommand: selfCommand(),
    readTextFile: readTextFileOrNull,
    realPath,
    cwd: workingDir,
    host: (config) => new Host(config, env, VERSION),
  };
}

/**
 * Runs one command line and returns the exit code. `ctx` and `commands` are for tests; the
 * error lines go through `ctx.stderr`.
 */
export async function main(
  args: string[],
  ctx: CliContext = realContext(),
  commands: readonly Command[] = COMMANDS,
): Promise<number> {
  const printError = (message: string, hint?: string) =>
    // An error can quote a registry's answer, a helper's name or a trigger: printable, bounded.
    ctx.stderr(
      `error: ${printable(message, 2000)}\n${hint ? `hint: ${printable(hint, 2000)}\n` : ""}`,
    );
  const { globals, commandIndex, error } = splitGlobalArgs(args);
  if (error) {
    printError(error, "run 'hyperbot-ops --help' for the usage");
    return 2;
  }
  const [name, ...rest] = args.slice(commandIndex);
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    ctx.stdout(usage(commands));
    return name === undefined ? 2 : 0;
  }
  if (name === "-V" || name === "--version" || name === "version") {
    ctx.stdout(`hyperbot-ops ${VERSION}`);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    printError(`unknown command '${name}'`, "run 'hyperbot-ops --help' for the list");
    return 2;
  }
  const beforeDashes = rest.indexOf("--") < 0 ? rest : rest.slice(0, rest.indexOf("--"));
  if (beforeDashes.includes("--help") || beforeDashes.includes("-h")) {
    ctx.stdout(command.help);
    return 0;
  }
  try {
    // Globals first: a flag written after the command name wins.
    return await command.run([...globals, ...rest], ctx);
  } catch (err) {
    const { message, hint, exitCode } = describeError(err);
    printError(message, hint);
    if (ctx.env.HYPERBOT_OPS_DEBUG && err instanceof Error) ctx.stderr(`${err.stack}\n`);
    return exitCode;
  } finally {
    await closeLogging().catch(() => {});
  }
}

if (import.meta.main) {
  // Log files and state are not for other users; the status file sets its own mode for the bot.
  Deno.umask(0o027);
  Deno.exit(await main(Deno.args));
}
