/**
 * What every benchmark shares: statistics, timing, the CLI as a subprocess, the docker CLI
 * with the test login, temporary folders and /proc readings.
 */

import { join } from "node:path";
import { cliCommand } from "../test/support/cli.ts";
import { TEST_DOCKER_CONFIG } from "../test/support/env.ts";

/** The `p`-th percentile (0..100) of `values`, nearest-rank; NaN for an empty list. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function median(values: number[]): number {
  return percentile(values, 50);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Milliseconds with one decimal below 10, none above; "–" for NaN. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return "–";
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

/** Progress to stderr; the table goes to stdout. */
export function say(text: string): void {
  console.error(`bench: ${text}`);
}

export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end; never throws for a non-zero exit. */
export async function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Output> {
  const out = await new Deno.Command(cmd, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout).trim(),
    stderr: d.decode(out.stderr).trim(),
  };
}

/** The docker CLI, logged in to the test registry. */
export function docker(...args: string[]): Promise<Output> {
  return run("docker", args, { DOCKER_CONFIG: TEST_DOCKER_CONFIG });
}

/** Like docker(), but throws with stderr on a non-zero exit. */
export async function dockerOk(...args: string[]): Promise<string> {
  const out = await docker(...args);
  if (out.code !== 0) {
    throw new Error(`docker ${args.join(" ")} exited ${out.code}: ${out.stderr}`);
  }
  return out.stdout;
}

/** `hyperbot-ops ...args` to its end (deno run, or HYPERBOT_OPS_BIN when set). */
export function cli(args: string[], env: Record<string, string> = {}): Promise<Output> {
  const [cmd, ...prefix] = cliCommand();
  return run(cmd, [...prefix, ...args], {
    NO_COLOR: "1",
    DOCKER_CONFIG: TEST_DOCKER_CONFIG,
    ...env,
  });
}

/** `hyperbot-ops ...args` in the background, its logs discarded. */
export function spawnCli(args: string[]): Deno.ChildProcess {
  const [cmd, ...prefix] = cliCommand();
  return new Deno.Command(cmd, {
    args: [...prefix, ...args],
    env: { NO_COLOR: "1", DOCKER_CONFIG: TEST_DOCKER_CONFIG },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** A sandbox base folder with data/, logs/ and state/, and the config flags pointing at it. */
export interface Sandbox {
  base: string;
  dataDir: string;
  stateDir: string;
  logDir: string;
  flags: string[];
}

export async function makeSandbox(name: string, extraFlags: string[] = []): Promise<Sandbox> {
  const base = await Deno.makeTempDir({ prefix: `hbt-bench-${name}-` });
  const sandbox = {
    base,
    dataDir: join(base, "data"),
    stateDir: join(base, "state"),
    logDir: join(base, "logs"),
    flags: [] as string[],
  };
  for (const dir of [sandbox.dataDir, sandbox.stateDir, sandbox.logDir]) {
    await Deno.mkdir(dir, { recursive: true });
  }
  sandbox.flags = [
    // An explicit, empty config file: a real /etc/hyperbot-ops/config.json must not leak in.
    "--config",
    await emptyConfig(base),
    "--base-dir",
    base,
    "--state-dir",
    sandbox.stateDir,
    ...extraFlags,
  ];
  return sandbox;
}

async function emptyConfig(base: string): Promise<string> {
  const path = join(base, "config.json");
  await Deno.writeTextFile(path, "{}\n");
  return path;
}

/** Waits until the watcher's heartbeat says `state`; throws after `timeoutMs`. */
export async function waitForWatchState(
  stateDir: string,
  state: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const heartbeat = JSON.parse(await Deno.readTextFile(join(stateDir, "heartbeat.json")));
      if (heartbeat.state === state) return;
    } catch {
      // Not written yet.
    }
    await sleep(20);
  }
  throw new Error(`the watcher did not reach state '${state}' within ${timeoutMs} ms`);
}

/** Polls until `path` no longer exists (every ~1 ms); returns performance.now() at that moment. */
export async function waitForGone(path: string, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    try {
      await Deno.lstat(path);
    } catch {
      return performance.now();
    }
    await sleep(1);
  }
  throw new Error(`${path} was not claimed within ${timeoutMs} ms`);
}

/** CPU ticks (user + system) of a process, from /proc/<pid>/stat. */
export async function cpuTicks(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** Resident memory in KiB (VmRSS of /proc/<pid>/status). */
export async function rssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
}

/** Voluntary + involuntary context switches of all threads (wakeups: busy polling shows here). */
export async function contextSwitches(pid: number): Promise<number> {
  // The main (JavaScript) thread only: worker threads come and go, and a count summed over
  // them can go down when one ends.
  const status = await Deno.readTextFile(`/proc/${pid}/task/${pid}/status`);
  let total = 0;
  for (const m of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) {
    total += Number(m[1]);
  }
  return total;
}

/** Clock ticks per second (getconf CLK_TCK; 100 on Linux). */
export async function clockTicks(): Promise<number> {
  const out = await run("getconf", ["CLK_TCK"]);
  return Number(out.stdout) || 100;
}

/** Stops a child process with SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(child: Deno.ChildProcess, graceMs = 5_000): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, graceMs);
  await child.status;
  clearTimeout(timer);
}
