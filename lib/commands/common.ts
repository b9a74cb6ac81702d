/**
 * The CLI layer every command shares: one option table per command that yields both the parser
 * spec and the help, one help template, the context main.ts hands down.
 *
 * Adding a command (say `notify`) takes one file and one line:
 *
 *   // lib/commands/notify.ts
 *   export const notifyCommand = defineCommand({
 *     name: "notify",
 *     summary: "send a test notification",            // the line in 'hyperbot-ops --help'
 *     usage: "[--dry-run]",                           // after 'hyperbot-ops notify'
 *     description: "Sends …",                         // paragraphs between Usage and Options
 *     options: {                                      // parser spec and help in one table
 *       "dry-run": { type: "boolean", help: "print what would be sent" },
 *       lines: { type: "string", value: "N", help: "…" },
 *     },
 *     exitCodes: { 0: "sent", 1: "the channel refused", 3: "configuration error" },
 *     async run({ values, positionals, config }, ctx) {
 *       const host = ctx.host(config());              // the real adapters, built in one place
 *       try { …; ctx.stdout("…"); return 0; } finally { host.close(); }
 *     },
 *   });
 *
 *   // main.ts: add `notifyCommand` to COMMANDS.
 *
 * The template adds `-h, --help` and the configuration flags (`--config FILE` and one flag per
 * config key, accepted before or after the command name) to every command. A command prints
 * results through `ctx.stdout`, decides on marks and colour by `ctx.color` (false under NO_COLOR
 * or when stdout is not a terminal), writes progress through `ctx.stderr` only when
 * `ctx.stderrIsTty`, throws typed errors from lib/errors.ts (main.ts prints them and exits with
 * their code), and never touches Deno.* itself: `ctx.host(config)` hands it the adapters.
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import {
  type Config,
  CONFIG_KEYS,
  type ConfigInput,
  type ConfigKey,
  DEFAULT_CONFIG_FILE,
  loadConfig,
} from "../config.ts";
import { UsageError } from "../errors.ts";
import type { Host } from "../adapters/host.ts";

/** What main.ts gives a command: the environment, where to print, and the real adapters. */
export interface CliContext {
  env: Record<string, string | undefined>;
  /** Results (tables, --json): one line or block, a newline is added. */
  stdout: (text: string) => void;
  /** Raw text on stderr (progress lines); nothing is added. */
  stderr: (text: string) => void;
  /** Whether stderr is a terminal (progress lines). */
  stderrIsTty: boolean;
  /** Marks and colour on stdout: stdout is a terminal and NO_COLOR is not set. */
  color: boolean;
  /** The command that runs this program (the compiled binary, or `deno run … main.ts`). */
  selfCommand: string[];
  /** Reads a text file; null when it does not exist. */
  readTextFile: (path: string) => string | null;
  /** The real path of an existing path, links resolved; throws when it does not exist. */
  realPath: (path: string) => string;
  /** The working folder, for naming the absolute path a relative one means (absent: not named). */
  cwd?: () => string;
  /** The real adapters (Docker engine, systemctl, cron, files) for this configuration. */
  host: (config: Config) => Host;
}

/** What main.ts sees of a command. */
export interface Command {
  name: string;
  summary: string;
  help: string;
  /** Runs the command; returns the exit code. Throws OpsError subclasses for failures. */
  run(argv: string[], ctx: CliContext): Promise<number>;
}

/** One option: its parser spec and its help line. The key of the table is the long name. */
export interface OptionSpec {
  type: "boolean" | "string";
  short?: string;
  multiple?: boolean;
  /** The value's placeholder in the help (`--lines N`). */
  value?: string;
  /** The help text; more lines are indented under the first. */
  help: string;
}

export type OptionTable = Record<string, OptionSpec>;

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** The configuration from the config flags, the environment and the config file. */
  config: () => Config;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** What follows `hyperbot-ops <name>` in the Usage line; `[config flags]` is appended. */
  usage: string;
  /** The paragraphs between the Usage line and the options. */
  description: string;
  options: OptionTable;
  /** How many positional arguments the command takes (default 0). */
  positionals?: number;
  /** The exit codes this command returns and what each means here. */
  exitCodes: Record<number, string>;
  /** A paragraph after the configuration flags (optional). */
  footer?: string;
  run(args: ParsedArgs, ctx: CliContext): Promise<number>;
}

const HELP_OPTION: OptionTable = { help: { type: "boolean", short: "h", help: "show this help" } };

/** `--config` and one flag per config key: accepted by every command, before or after its name. */
export const CONFIG_OPTIONS: OptionTable = {
  config: {
    type: "string",
    value: "FILE",
    help: `config file (env HYPERBOT_OPS_CONFIG, default ${DEFAULT_CONFIG_FILE})`,
  },
  ...Object.fromEntries(
    Object.entries(CONFIG_KEYS).map(([key, spec]) => [
      spec.flag,
      spec.kind === "images"
        ? { type: "string", multiple: true, value: "REPO", help: `${key} (env ${spec.env})` }
        : { type: "string", value: "VALUE", help: `${key} (env ${spec.env})` },
    ]),
  ),
};

/** The parser spec of an option table. */
export function parserOptions(table: OptionTable): NonNullable<ParseArgsConfig["options"]> {
  return Object.fromEntries(
    Object.entries(table).map(([name, o]) => [
      name,
      {
        type: o.type,
        ...(o.short ? { short: o.short } : {}),
        ...(o.multiple ? { multiple: true } : {}),
      },
    ]),
  );
}

/** The help lines of an option table, aligned. */
export function renderOptions(table: OptionTable): string {
  const rows = Object.entries(table).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ""}--${name}${o.value ? ` ${o.value}` : ""}`;
    return [o.short ? flag : `    ${flag}`, o.help] as const;
  });
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  return rows.map(([flag, help]) =>
    `  ${flag.padEnd(width)}${help.split("\n").join(`\n  ${" ".repeat(width)}`)}`
  ).join("\n");
}

/** The exit-code lines, one per code. */
export function renderExitCodes(codes: Record<number, string>): string {
  return Object.entries(codes).map(([code, text]) => `  ${code}  ${text}`).join("\n");
}

/** The one help layout: title, Usage, description, Options (with -h), Exit codes, config flags. */
export function renderHelp(spec: CommandSpec): string {
  return [
    `hyperbot-ops ${spec.name}: ${spec.summary}`,
    "",
    `Usage: hyperbot-ops ${spec.name} ${spec.usage ? `${spec.usage} ` : ""}[config flags]`,
    "",
    spec.description.trim(),
    "",
    "Options:",
    renderOptions({ ...spec.options, ...HELP_OPTION }),
    "",
    "Exit codes:",
    renderExitCodes(spec.exitCodes),
    "",
    "Configuration flags (override env and the config file; also before the command name):",
    renderOptions(CONFIG_OPTIONS),
    ...(spec.footer ? ["", spec.footer.trim()] : []),
  ].join("\n");
}

/** A command from its spec: the help rendered by the template, argv parsed by the same table. */
export function defineCommand(spec: CommandSpec): Command {
  return {
    name: spec.name,
    summary: spec.summary,
    help: renderHelp(spec),
    run(argv, ctx) {
      const { values, positionals } = parseCommandArgs(
        spec.name,
        argv,
        spec.options,
        spec.positionals ?? 0,
      );
      let config: Config | undefined;
      return spec.run({
        values,
        positionals,
        config: () =>
          config ??= loadConfig({
            ...configFlags(values),
            env: ctx.env,
            readTextFile: ctx.readTextFile,
            realPath: ctx.realPath,
            cwd: ctx.cwd?.(),
          }),
      }, ctx);
    },
  };
}

/** Parses argv strictly: an unknown flag or a missing value is a UsageError. */
export function parseCommandArgs(
  command: string,
  argv: string[],
  options: OptionTable,
  allowPositionals = 0,
): Omit<ParsedArgs, "config"> {
  const hint = `see 'hyperbot-ops ${command} --help'`;
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: parserOptions({ ...CONFIG_OPTIONS, ...options, ...HELP_OPTION }),
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify.*$/s, ""), {
      object: command,
      hint,
    });
  }
  if (parsed.positionals.length > allowPositionals) {
    throw new UsageError(`unexpected argument '${parsed.positionals[allowPositionals]}'`, {
      object: command,
      hint,
    });
  }
  return { values: parsed.values as ParsedArgs["values"], positionals: parsed.positionals };
}

/**
 * Splits the options written before the command name from the rest, so that
 * `hyperbot-ops --config FILE status` works like `docker --config DIR ps`. Only the
 * configuration flags (and -h/-V, which main.ts handles) may come before the name.
 * Returns the global arguments (to hand to the command) and the index of the command name.
 */
export function splitGlobalArgs(
  args: string[],
): { globals: string[]; commandIndex: number; error?: string } {
  const globals: string[] = [];
  let i = 0;
  while (i < args.length && args[i].startsWith("-") && args[i] !== "-") {
    const arg = args[i];
    if (["-h", "--help", "-V", "--version"].includes(arg)) return { globals, commandIndex: i };
    const [flag, inline] = arg.startsWith("--") ? splitAt(arg.slice(2), "=") : [arg, undefined];
    const option = arg.startsWith("--") ? CONFIG_OPTIONS[flag] : undefined;
    if (!option) return { globals, commandIndex: i, error: `unknown option '${arg}'` };
    if (inline !== undefined) {
      globals.push(arg);
      i += 1;
    } else {
      if (i + 1 >= args.length) {
        return { globals, commandIndex: i, error: `option '--${flag}' needs a value` };
      }
      globals.push(arg, args[i + 1]);
      i += 2;
    }
  }
  return { globals, commandIndex: i };
}

function splitAt(text: string, sep: string): [string, string | undefined] {
  const at = text.indexOf(sep);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}

/** The config flags out of parsed values, as loadConfig wants them. */
export function configFlags(
  values: Record<string, unknown>,
): { flags: ConfigInput; configFile?: string } {
  const flags: ConfigInput = {};
  for (
    const [key, spec] of Object.entries(CONFIG_KEYS) as [
      ConfigKey,
      (typeof CONFIG_KEYS)[ConfigKey],
    ][]
  ) {
    const v = values[spec.flag];
    if (v !== undefined) flags[key] = v;
  }
  return { flags, configFile: values.config as string | undefined };
}
