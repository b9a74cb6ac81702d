/**
 * Every line a trigger makes the watcher write is inside the documented budget (20 a minute),
 * whatever the triggers are and whatever state the host is in: bad triggers, triggers while
 * the Docker daemon is away, triggers while the status file cannot be written.
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config.ts";
import { DockerError } from "../../lib/errors.ts";
import { type Fields, type Logger } from "../../lib/log.ts";
import { DEFAULT_WATCH_OPTIONS, runWatch, type WatchDeps } from "../../lib/watch/loop.ts";
import { FakeClock, FakeStatus } from "../fakes/state.ts";
import { FakeFolderWatcher, FakeHeartbeat, FakeInbox } from "../fakes/watch.ts";

const IMAGE = "127.0.0.1:5000/hyperbot/app";
const config = loadConfig({
  env: {},
  readTextFile: () => null,
  flags: { dataDir: "/data", stateDir: "/state", allowedImages: [IMAGE], container: "bot" },
});
const BUDGET = DEFAULT_WATCH_OPTIONS.maxRejectionLogs;
const WINDOW = DEFAULT_WATCH_OPTIONS.logWindowMs;

/** Lines of the watcher's own start, stop and state changes: not caused by a trigger. */
const LIFECYCLE = /^watch (starting|stopped|state)$/;

class TimedLogger implements Logger {
  readonly lines: { at: number; level: string; message: string; fields: Fields }[] = [];
  constructor(private readonly clock: FakeClock) {}
  private add(level: string, message: string, fields: Fields = {}) {
    this.lines.push({ at: this.clock.now().getTime(), level, message, fields });
  }
  debug(m: string, f?: Fields) {
    this.add("debug", m, f);
  }
  info(m: string, f?: Fields) {
    this.add("info", m, f);
  }
  warn(m: string, f?: Fields) {
    this.add("warn", m, f);
  }
  error(m: string, f?: Fields) {
    this.add("error", m, f);
  }
  /** Lines a trigger caused. */
  get triggered() {
    return this.lines.filter((l) => !LIFECYCLE.test(l.message));
  }
}

/** Writes `count` triggers `everyMs` apart on virtual time with the production timings; returns the log. */
async function flood(
  count: number,
  everyMs: number,
  text: (i: number) => string,
  overrides: Partial<WatchDeps> = {},
) {
  const clock = new FakeClock();
  const inbox = new FakeInbox(clock);
  const watcher = new FakeFolderWatcher();
  const logger = new TimedLogger(clock);
  const stop = new AbortController();
  const deps: WatchDeps = {
    inbox,
    watcher,
    clock,
    logger,
    heartbeat: new FakeHeartbeat(),
    status: new FakeStatus(),
    update: () => Promise.reject(new Error("no update in this test")),
    recover: () => Promise.resolve(null),
    ping: () => Promise.resolve(),
    pid: 1,
    ...overrides,
  };
  const t0 = clock.now().getTime();
  const running = runWatch(deps, config, stop.signal);
  await clock.runUntil("the folder watch", () => watcher.active !== null);
  for (let i = 0; i < count; i++) {
    inbox.write(text(i));
    watcher.fire();
    await clock.advance(everyMs);
  }
  await clock.advance(200);
  stop.abort();
  await running;
  return { logger, t0, inbox };
}

/** The most trigger lines in any window of `WINDOW` ms that starts at one of them. */
function worstWindow(lines: { at: number }[]): number {
  let worst = 0;
  for (const first of lines) {
    worst = Math.max(
      worst,
      lines.filter((l) => l.at >= first.at && l.at < first.at + WINDOW).length,
    );
  }
  return worst;
}

Deno.test("251 bad triggers in 20 s write at most the budget's 20 lines (no line per claim)", async () => {
  const { logger } = await flood(251, 80, (i) => `junk ${i}`);
  const lines = logger.triggered;
  assert.ok(
    lines.length <= BUDGET,
    `${lines.length} lines:\n${lines.map((l) => l.message).join("\n")}`,
  );
  assert.ok(lines.some((l) => l.message === "trigger rejected"));
});

Deno.test("triggers while the Docker daemon is away write at most the budget's lines", async () => {
  const { logger, inbox } = await flood(
    200,
    100,
    (i) => `{"image":"${IMAGE}:v${i}","id":"r${i}"}`,
    {
      ping: () => Promise.reject(new DockerError("cannot reach the Docker daemon")),
    },
  );
  const lines = logger.triggered;
  assert.ok(
    lines.length <= BUDGET,
    `${lines.length} lines:\n${lines.map((l) => l.message).join("\n")}`,
  );
  assert.ok(lines.some((l) => /Docker daemon unreachable/.test(l.message)));
  assert.ok(inbox.claims.size >= 1, "the newest trigger is kept for the retry");
});

Deno.test("triggers while the status file cannot be written write at most the budget's lines", async () => {
  const status = new FakeStatus();
  status.write = () => Promise.reject(new Error("EISDIR: the bot made it a folder"));
  const { logger } = await flood(200, 100, (i) => `junk ${i}`, { status });
  const lines = logger.triggered;
  assert.ok(
    lines.length <= BUDGET,
    `${lines.length} lines:\n${lines.map((l) => l.message).join("\n")}`,
  );
  assert.ok(lines.some((l) => /cannot write the status file/.test(l.message)));
});

Deno.test("a flood over several minutes stays inside the budget in every window, the summary lines included", async () => {
  const { logger } = await flood(1_500, 200, (i) => `junk ${i}`);
  const lines = logger.triggered;
  const perWindow = new Map<number, number>();
  const first = lines[0].at;
  for (const l of lines) {
    const w = Math.floor((l.at - first) / WINDOW);
    perWindow.set(w, (perWindow.get(w) ?? 0) + 1);
  }
  assert.ok(perWindow.size >= 4, `${perWindow.size} windows`);
  for (const [w, n] of perWindow) assert.ok(n <= BUDGET, `window ${w}: ${n} lines`);
  assert.ok(lines.some((l) => /left out of the log and history/.test(l.message)));
  // The windows are fixed, so two neighbours can meet in less than a minute: never more than twice.
  assert.ok(worstWindow(lines) <= 2 * BUDGET);
});
