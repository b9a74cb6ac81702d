import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config.ts";
import { MemoryLogger } from "../../lib/log.ts";
import type { UpdateReport } from "../../lib/update/report.ts";
import type { UpdateRequest } from "../../lib/update/run.ts";
import { IDLE_UPKEEP_EVERY_MS, runWatch, type WatchDeps } from "../../lib/watch/loop.ts";
import { FakeClock, FakeStatus } from "../fakes/state.ts";
import { FakeFolderWatcher, FakeHeartbeat, FakeInbox } from "../fakes/watch.ts";

const IMAGE = "127.0.0.1:5000/hyperbot/app";
const config = loadConfig({
  env: {},
  readTextFile: () => null,
  flags: { dataDir: "/data", stateDir: "/state", allowedImages: [IMAGE], container: "bot" },
});

function unchanged(request: UpdateRequest): UpdateReport {
  const now = new Date().toISOString();
  return {
    id: `upd-${Math.random().toString(16).slice(2, 8)}`,
    outcome: "unchanged",
    container: "bot",
    image: request.image ?? null,
    previousImage: request.image ?? null,
    imageId: "sha256:same",
    previousImageId: "sha256:same",
    startedAt: now,
    finishedAt: now,
    durationMs: 0,
    downtimeMs: 0,
    error: null,
    warnings: [],
    steps: [],
  };
}

Deno.test("a stream of unchanged triggers runs the idle upkeep (the memory trim) at most once per period", async () => {
  const clock = new FakeClock();
  const inbox = new FakeInbox(clock);
  const stop = new AbortController();
  let updates = 0;
  let upkeeps = 0;
  const deps: WatchDeps = {
    inbox,
    watcher: new FakeFolderWatcher(),
    clock,
    logger: new MemoryLogger(),
    heartbeat: new FakeHeartbeat(),
    status: new FakeStatus(),
    update: (request) => {
      updates++;
      return Promise.resolve(unchanged(request));
    },
    recover: () => Promise.resolve(null),
    ping: () => Promise.resolve(),
    pid: 4242,
    onIdle: () => upkeeps++,
  };
  const running = runWatch(deps, config, stop.signal, { debounceMs: 20, rescanMs: 100 });
  try {
    await clock.runUntil("the start", () => upkeeps === 1);
    for (let i = 1; i <= 10; i++) {
      inbox.write(`${IMAGE}:v${i}\n`);
      await clock.runUntil(`update ${i}`, () => updates === i);
    }
    assert.equal(upkeeps, 1, "once at the start, not after each of 10 updates");
    await clock.advance(IDLE_UPKEEP_EVERY_MS);
    inbox.write(`${IMAGE}:v11\n`);
    await clock.runUntil(
      "update 11 and the upkeep after it",
      () => updates === 11 && upkeeps === 2,
    );
  } finally {
    stop.abort();
    await running;
  }
});
