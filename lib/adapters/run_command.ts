/**
 * Runs a program and collects its output: the one way adapters start processes.
 */

export interface RunCommandOptions {
  /** Written to the program's stdin, which is then closed. */
  stdin?: string;
  /** Killed (SIGKILL) after this many milliseconds; default 30 000. */
  timeoutMs?: number;
  /** Replaces the environment when given (PATH decides where the program is found). */
  env?: Record<string, string>;
}

export interface CommandResult {
  /** Exit code; 124 when the timeout killed it. */
  code: number;
  stdout: string;
  stderr: string;
}

export type CommandRunner = (
  cmd: string,
  args: string[],
  options?: RunCommandOptions,
) => Promise<CommandResult>;

/**
 * Runs `cmd` with `args` (no shell). Throws Deno.errors.NotFound when the program does not
 * exist; a non-zero exit is a result, not an error.
 */
export const runCommand: CommandRunner = async (cmd, args, options = {}) => {
  const command = new Deno.Command(resolve(cmd, options.env), {
    args,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(options.env ? { env: options.env, clearEnv: true } : {}),
  });
  const child = command.spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, options.timeoutMs ?? 30_000);
  try {
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      // A program that exits without reading its stdin must not fail the run.
      await writer.write(new TextEncoder().encode(options.stdin)).catch(() => {});
      await writer.close().catch(() => {});
    }
    const out = await child.output();
    const decoder = new TextDecoder();
    return {
      code: timedOut ? 124 : out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
};

/** Looks a bare program name up in the given PATH (Deno looks in its own process's PATH). */
function resolve(cmd: string, env?: Record<string, string>): string {
  if (cmd.includes("/") || !env?.PATH) return cmd;
  for (const dir of env.PATH.split(":")) {
    if (!dir) continue;
    const path = `${dir}/${cmd}`;
    try {
      const info = Deno.statSync(path);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111)) return path;
    } catch {
      // Not here.
    }
  }
  return cmd;
}
