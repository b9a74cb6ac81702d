/**
 * What the notifier must hold against a failing outbox and hostile text: a full stateDir does
 * not turn a failing channel into a request every 50 ms; the Telegram token never reaches the
 * notify state, the outbox or the logs (Deno's fetch error names the URL, token included); the
 * error text of an update reaches chats and webhooks with its escape sequences made visible.
 */

import assert from "node:assert/strict";
import { FetchHttpOut } from "../../lib/adapters/http_out.ts";
import { parseChannels } from "../../lib/notify/channels.ts";
import { HOLD_AFTER_ERROR_MS, Notifier } from "../../lib/notify/notifier.ts";
import type { UpdateReport } from "../../lib/update/report.ts";
import { MemoryLogger } from "../../lib/log.ts";
import { FakeClock } from "../fakes/state.ts";
import { MemoryNotifyState, MemoryOutbox } from "../fakes/notify.ts";
import { closedPort, startReceiver } from "../support/receiver.ts";

const TOKEN = "123456:SECRETSECRETSECRET";

function setup(channels: unknown[]) {
  const clock = new FakeClock(Date.now());
  const outbox = new MemoryOutbox();
  const state = new MemoryNotifyState();
  const logger = new MemoryLogger();
  const notifier = new Notifier(
    { http: new FetchHttpOut(), outbox, state, clock, logger, host: "srv-test-1" },
    {
      channels: parseChannels(channels, "test"),
      language: "en",
      outcomes: ["updated", "rolled_back", "failed"],
      pingUrl: null,
      container: "trading-system-app",
    },
  );
  return { notifier, outbox, state, logger, clock };
}

function failed(error: string): UpdateReport {
  return {
    id: "upd-20261129120000-abcd1234",
    outcome: "failed",
    container: "trading-system-app",
    image: "registry.example.com/org/app:2.2.8",
    previousImage: "registry.example.com/org/app:2.2.7",
    imageId: null,
    previousImageId: null,
    startedAt: "2026-11-29T12:00:00.000Z",
    finishedAt: "2026-11-29T12:00:42.000Z",
    durationMs: 42_000,
    error,
    warnings: [],
    steps: [],
  } as unknown as UpdateReport;
}

Deno.test("a failing channel whose retry cannot be recorded (stateDir full) is not tried again before the hold", async () => {
  const r = startReceiver({ status: 500, body: "down" });
  try {
    const { notifier, outbox, clock } = setup([{ type: "webhook", url: `${r.url}/x` }]);
    outbox.failReschedule = new Error("ENOSPC: no space left on device");
    await notifier.emit("docker_unreachable", { detail: "x" });
    await notifier.deliverDue();
    assert.equal(r.requests.length, 1);
    // What run() does next: ask when the next entry is due, and deliver again.
    const next = await notifier.nextDueAt();
    assert.ok(next !== null && next - clock.now().getTime() >= HOLD_AFTER_ERROR_MS, `${next}`);
    await notifier.deliverDue();
    await notifier.deliverDue();
    assert.equal(r.requests.length, 1, "tried again at once");
    await clock.advance(HOLD_AFTER_ERROR_MS);
    await notifier.deliverDue();
    assert.equal(r.requests.length, 2);
  } finally {
    await r.close();
  }
});

Deno.test("telegram: a refused connection's error (which names the URL with the token) keeps the token out of the outbox, the state, test results and logs", async () => {
  const { notifier, outbox, state, logger } = setup([
    { type: "telegram", token: TOKEN, chatId: 42, apiBase: `http://127.0.0.1:${closedPort()}` },
  ]);
  await notifier.updateFinished(failed("boom"));
  assert.equal((await notifier.deliverDue()).failed, 1);
  const results = await notifier.sendTest();
  assert.equal(results[0].ok, false);
  const [entry] = [...outbox.entries.values()];
  // The error is there, only without the secret.
  assert.match(entry.lastError ?? "", /127\.0\.0\.1/);
  const everything = JSON.stringify([outbox.entries.size, [...outbox.entries.values()]]) +
    JSON.stringify(state.state) + JSON.stringify(results) + JSON.stringify(logger.lines);
  assert.ok(!everything.includes("SECRETSECRETSECRET"), everything);
});

Deno.test("telegram: a receiver that echoes the token in its error text does not get it into the outbox, the state or the logs", async () => {
  const r = startReceiver({
    status: 401,
    body: { ok: false, error_code: 401, description: `Unauthorized: bot${TOKEN} is revoked` },
  });
  try {
    const { notifier, outbox, state, logger } = setup([
      { type: "telegram", token: TOKEN, chatId: 42, apiBase: r.url },
    ]);
    await notifier.updateFinished(failed("boom"));
    assert.equal((await notifier.deliverDue()).failed, 1);
    const [entry] = [...outbox.entries.values()];
    assert.match(entry.lastError ?? "", /Unauthorized/);
    const everything = JSON.stringify([...outbox.entries.values()]) +
      JSON.stringify(state.state) + JSON.stringify(logger.lines);
    assert.ok(!everything.includes("SECRETSECRETSECRET"), everything);
  } finally {
    await r.close();
  }
});

Deno.test("an update error with escape sequences reaches the webhook JSON and the chat text with them made visible", async () => {
  const r = startReceiver({ status: 200, body: { ok: true } });
  try {
    const { notifier } = setup([
      { type: "webhook", url: `${r.url}/hook` },
      { type: "telegram", token: TOKEN, chatId: 42, apiBase: r.url },
    ]);
    await notifier.updateFinished(
      failed("pull failed: \u001b[31mred\u001b]0;title\u0007 \u202eevil"),
    );
    assert.equal((await notifier.deliverDue()).delivered, 2);
    const hook = JSON.parse(r.requests.find((q) => q.target === "/hook")!.body);
    const chat = JSON.parse(r.requests.find((q) => q.target.endsWith("/sendMessage"))!.body);
    for (const text of [hook.error, chat.text]) {
      assert.ok(text.includes("pull failed: \\x1b[31mred"), text);
      for (const raw of ["\u001b", "\u0007", "\u202e"]) assert.ok(!text.includes(raw), text);
    }
  } finally {
    await r.close();
  }
});
