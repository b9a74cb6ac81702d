import assert from "node:assert/strict";
import { BACKGROUND_STOP_MS, settleWithin } from "../../lib/watch/stop.ts";
import { FakeClock } from "../fakes/state.ts";

Deno.test("after SIGTERM a background task that hangs (a Docker ping, a send) is waited for at most BACKGROUND_STOP_MS", async () => {
  const clock = new FakeClock();
  let ended: boolean | null = null;
  const hanging = new Promise<void>(() => {});
  const waiting = settleWithin([Promise.resolve(), hanging], BACKGROUND_STOP_MS, clock)
    .then((all) => ended = all);
  await clock.advance(BACKGROUND_STOP_MS - 1);
  assert.equal(ended, null);
  await clock.advance(1);
  await waiting;
  assert.equal(ended, false);
  assert.ok(BACKGROUND_STOP_MS <= 1_000);
});

Deno.test("background tasks that end (or fail) in time are waited for, and the timer is cancelled", async () => {
  const clock = new FakeClock();
  const all = await settleWithin(
    [Promise.resolve(), Promise.reject(new Error("send failed"))],
    BACKGROUND_STOP_MS,
    clock,
  );
  assert.equal(all, true);
  assert.equal(clock.pending, 0);
});
