/**
 * What every subcommand shares: the config flags, parsing with clear errors, the context
 * main.ts hands down.
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { CONFIG_KEYS, type ConfigInput, type ConfigKey } from "../config.ts";
import { UsageError } from "../errors.ts";

/** What main.ts gives a command: its arguments, the environment, and where to print. */
export interface CliContext {
  env: Record<string, string | undefined>;
  /** Results (tables, --json). */
  stdout: (text: string) => void;
  /** Whether stdout/stderr are terminals (progress, colour). */
  isTty: boolean;
  /** The command that runs this program (the compiled binary, or `deno run … main.ts`). */
  selfCommand: string[];
}

export interface Command {
  name: string;
  summary: string;
  help: string;
  /** Runs the command; returns the exit code. Throws OpsError subclasses for failures. */
  run(argv: string[], ctx: CliContext): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** `--config` and one flag per config key. */
export const CONFIG_FLAG_OPTIONS: Options = {
  config: { type: "string" },
  ...Object.fromEntries(
    Object.values(CONFIG_KEYS).map((spec) => [
      spec.flag,
      spec.kind === "images" ? { type: "string", multiple: true } : { type: "string" },
    ]),
  ),
};

export const CONFIG_FLAGS_HELP = `Configuration flags (override env and the config file):
  --config FILE            config file (env HYPERBOT_OPS_CONFIG, default /etc/hyperbot-ops/config.json)
${
  Object.entries(CONFIG_KEYS).map(([key, spec]) =>
    `  --${
      (spec.flag + (spec.kind === "images" ? " REPO" : " VALUE")).padEnd(23)
    }${key} (env ${spec.env})`
  ).join("\n")
}`;

/** Parses argv strictly: an unknown flag or a missing value is a UsageError. */
export function parseCommandArgs(
  command: string,
  argv: string[],
  options: Options,
  allowPositionals = 0,
): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...CONFIG_FLAG_OPTIONS, ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify.*$/s, ""), {
      object: command,
      hint: `see 'hyperbot-ops ${command} --help'`,
    });
  }
  if (parsed.positionals.length > allowPositionals) {
    throw new UsageError(`unexpected argument '${parsed.positionals[allowPositionals]}'`, {
      object: command,
      hint: `see 'hyperbot-ops ${command} --help'`,
    });
  }
  return { values: parsed.values as ParsedArgs["values"], positionals: parsed.positionals };
}

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
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
