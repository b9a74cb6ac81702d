import assert from "node:assert/strict";
import type { LeftReporter } from "../../lib/adapters/trigger_inbox.ts";
import { loadConfig } from "../../lib/config.ts";
import { MemoryLogger } from "../../lib/log.ts";
import { runWatch } from "../../lib/watch/loop.ts";
import { FakeClock, FakeStatus } from "../fakes/state.ts";
import { FakeFolderWatcher, FakeHeartbeat, FakeInbox } from "../fakes/watch.ts";

const config = loadConfig({
  env: {},
  readTextFile: () => null,
  flags: { dataDir: "/data", stateDir: "/state", allowedImages: [], container: "bot" },
});

/** A FakeInbox that hands out the reporter the loop gives it, as FileTriggerInbox uses it. */
class ReportingInbox extends FakeInbox {
  report: LeftReporter | null = null;
  reportLeftTo(report: LeftReporter) {
    this.report = report;
  }
}

Deno.test("entries the bot made that cannot be removed are logged within the trigger log budget, each path once", async () => {
  const clock = new FakeClock();
  const inbox = new ReportingInbox(clock);
  const logger = new MemoryLogger();
  const stop = new AbortController();
  const running = runWatch(
    {
      inbox,
      watcher: new FakeFolderWatcher(),
      clock,
      logger,
      heartbeat: new FakeHeartbeat(),
      status: new FakeStatus(),
      update: () => Promise.reject(new Error("no update expected")),
      recover: () => Promise.resolve(null),
      ping: () => Promise.resolve(),
      pid: 4242,
    },
    config,
    stop.signal,
    { rescanMs: 100 },
  );
  try {
    assert.ok(inbox.report, "the loop gives the inbox its reporter");
    for (let i = 0; i < 5; i++) inbox.report("/data/.update_trigger.claimed-1", "moved");
    for (let i = 0; i < 200; i++) inbox.report(`/data/.update_trigger.claimed-x${i}`, "moved");
    const left = logger.lines.filter((l) => l.message.startsWith("cannot remove an entry"));
    assert.ok(left.length <= 20, `${left.length} lines`);
    assert.equal(
      left.filter((l) => l.fields.path === "/data/.update_trigger.claimed-1").length,
      1,
    );
  } finally {
    stop.abort();
    await clock.runUntil("the stop", () => true).catch(() => {});
    await running;
  }
});
