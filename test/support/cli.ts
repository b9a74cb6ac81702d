/**
 * Runs the hyperbot-ops CLI as a subprocess, the way an operator or systemd does.
 * The command comes from one variable: HYPERBOT_OPS_BIN (the compiled binary) when set,
 * else `deno run <the compile permissions> main.ts`.
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RUN_FLAGS } from "../../lib/runtime_flags.ts";

export const MAIN_TS = fileURLToPath(new URL("../../main.ts", import.meta.url));

/** The same permissions and V8 flags `deno task compile` bakes in. */
export const RUN_PERMISSIONS = RUN_FLAGS;

/** The argv prefix that runs the CLI. */
export function cliCommand(): string[] {
  const bin = Deno.env.get("HYPERBOT_OPS_BIN");
  if (bin) return [bin];
  return [Deno.execPath(), "run", "--quiet", ...RUN_PERMISSIONS, MAIN_TS];
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  stdin?: string;
  cwd?: string;
}

/** Runs `hyperbot-ops ...args` to completion. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const [cmd, ...prefix] = cliCommand();
  const child = new Deno.Command(cmd, {
    args: [...prefix, ...args],
    env: { NO_COLOR: "1", ...options.env },
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Starts `hyperbot-ops ...args` in the background (e.g. `watch`). */
export function spawnCli(args: string[], options: CliOptions = {}): Deno.ChildProcess {
  const [cmd, ...prefix] = cliCommand();
  return new Deno.Command(cmd, {
    args: [...prefix, ...args],
    env: { NO_COLOR: "1", ...options.env },
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * A host for one CLI run in a new temporary folder: empty data, logs and state folders, a
 * config file of `{}`, and the flags that point the CLI at them. The caller removes `dir`.
 */
export async function tempHost(prefix: string) {
  const dir = await Deno.makeTempDir({ prefix });
  const dataDir = join(dir, "data");
  const logDir = join(dir, "logs");
  const stateDir = join(dir, "state");
  for (const d of [dataDir, logDir, stateDir]) await Deno.mkdir(d);
  const configFile = join(dir, "config.json");
  await Deno.writeTextFile(configFile, "{}");
  const args = [
    "--config",
    configFile,
    "--data-dir",
    dataDir,
    "--log-dir",
    logDir,
    "--state-dir",
    stateDir,
  ];
  return { dir, dataDir, logDir, stateDir, configFile, args };
}

/** A CLI process running in the background (`watch`), its output drained as it comes. */
export interface Running {
  child: Deno.ChildProcess;
  /** The tail of what it wrote to stdout and stderr (bounded: a flood test stays small). */
  output(): string;
  /** Resolves with the exit status when the process has ended and its output is read. */
  exited: Promise<Deno.CommandStatus>;
  /**
   * SIGTERM; resolves with the exit code and how long the exit took. One that hangs is killed
   * after `hangMs` (code -1), so the test fails instead of hanging.
   */
  stop(hangMs?: number): Promise<{ code: number; ms: number }>;
}

/** Starts `hyperbot-ops ...args` in the background, keeping the last `keep` characters of its output. */
export function startCli(args: string[], options: CliOptions & { keep?: number } = {}): Running {
  const child = spawnCli(args, options);
  const keep = options.keep ?? 200_000;
  let text = "";
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      text = (text + decoder.decode(chunk, { stream: true })).slice(-keep);
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const exited = child.status.then(async (status) => {
    await drained;
    return status;
  });
  return {
    child,
    output: () => text,
    exited,
    async stop(hangMs = 120_000) {
      const at = performance.now();
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const hung = new Promise<null>((r) => timer = setTimeout(() => r(null), hangMs));
      const status = await Promise.race([child.status, hung]);
      clearTimeout(timer);
      const ms = performance.now() - at;
      if (status === null) {
        try {
          child.kill("SIGKILL");
        } catch {
          // Gone meanwhile.
        }
      }
      await exited;
      return { code: status?.code ?? -1, ms };
    },
  };
}
