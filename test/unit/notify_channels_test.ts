/**
 * Each channel against a local server that checks the request exactly as the service documents
 * it (method, path, query, headers, body), with the DingTalk and Feishu signatures and the
 * webhook HMAC recomputed here with node:crypto (not the Web Crypto code under test); and the
 * failure answers: HTTP 500, a DingTalk/WeCom errcode, Feishu's code, Telegram's ok:false, a
 * timeout, a refused connection.
 */

import nodeAssert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { FetchHttpOut } from "../../lib/adapters/http_out.ts";
import { parseChannels } from "../../lib/notify/channels.ts";
import { Notifier, RETRY_DELAYS_MS } from "../../lib/notify/notifier.ts";
import type { UpdateReport } from "../../lib/update/report.ts";
import { MemoryLogger } from "../../lib/log.ts";
import { FakeClock } from "../fakes/state.ts";
import { MemoryNotifyState, MemoryOutbox } from "../fakes/notify.ts";
import { closedPort, type Receiver, startReceiver } from "../support/receiver.ts";

const assert: (ok: unknown, message?: string) => asserts ok = nodeAssert.ok;
const assertEquals = (actual: unknown, expected: unknown): void =>
  nodeAssert.deepStrictEqual(actual, expected);
const assertMatch = (text: string, re: RegExp) => nodeAssert.match(text, re);
const assertStringIncludes = (text: string, part: string) =>
  nodeAssert.ok(text.includes(part), `expected ${JSON.stringify(part)} in:\n${text}`);

const IMAGE_OLD = "registry.example.com/org/app:2.2.7";
const IMAGE_NEW = "registry.example.com/org/app:2.2.8";
const OLD_ID = "sha256:1111111111112222222222223333333333334444444444445555555555556666";

function rolledBack(): UpdateReport & { logTail: string[] } {
  return {
    id: "upd-20261129120000-abcd1234",
    requestId: "req-42",
    outcome: "rolled_back",
    container: "trading-system-app",
    image: IMAGE_NEW,
    previousImage: IMAGE_OLD,
    imageId: OLD_ID,
    previousImageId: OLD_ID,
    startedAt: "2026-11-29T12:00:00.000Z",
    finishedAt: "2026-11-29T12:00:42.000Z",
    durationMs: 42_000,
    error: "the new container failed: exited with code 1",
    warnings: [],
    steps: [],
    downtimeMs: 3100,
    logTail: ["starting", "panic: \u001b[31mboom\u001b[0m"],
  };
}

function setup(channels: unknown[], options: { pingUrl?: string } = {}) {
  const clock = new FakeClock(Date.now());
  const outbox = new MemoryOutbox();
  const state = new MemoryNotifyState();
  const logger = new MemoryLogger();
  const parsed = parseChannels(channels, "test");
  const notifier = new Notifier(
    { http: new FetchHttpOut(), outbox, state, clock, logger, host: "srv-test-1" },
    {
      channels: parsed,
      language: "en",
      outcomes: ["updated", "rolled_back", "failed"],
      pingUrl: options.pingUrl ?? null,
      container: "trading-system-app",
    },
  );
  return { notifier, outbox, state, logger, clock, channels: parsed };
}

function hmacBase64(key: string, message: string): string {
  return createHmac("sha256", key).update(message, "utf8").digest("base64");
}

async function withReceiver(
  answer: Receiver["answer"],
  fn: (r: Receiver) => Promise<void>,
): Promise<void> {
  const r = startReceiver(answer);
  try {
    await fn(r);
  } finally {
    await r.close();
  }
}

Deno.test("webhook: POST of the schema-1 JSON with X-Hyperbot-Signature = sha256=<hex HMAC of the body>", async () => {
  await withReceiver({ status: 204, body: "" }, async (r) => {
    const secret = "whsec-0123456789";
    const { notifier, outbox, state } = setup([
      { type: "webhook", url: `${r.url}/hooks/hyperbot`, secret },
    ]);
    await notifier.updateFinished(rolledBack());
    const round = await notifier.deliverDue();
    assertEquals(round, { delivered: 1, failed: 0, dropped: 0, pending: 0 });
    assertEquals(r.requests.length, 1);
    const req = r.requests[0];
    assertEquals(req.method, "POST");
    assertEquals(req.target, "/hooks/hyperbot");
    assertMatch(req.headers.get("content-type") ?? "", /^application\/json/);
    const expected = createHmac("sha256", secret).update(req.body, "utf8").digest("hex");
    assertEquals(req.headers.get("x-hyperbot-signature"), `sha256=${expected}`);
    const body = JSON.parse(req.body);
    assertEquals(body.schema, 1);
    assertEquals(body.event, "update");
    assertEquals(body.host, "srv-test-1");
    assertEquals(body.container, "trading-system-app");
    assertEquals(body.outcome, "rolled_back");
    assertEquals(body.image, IMAGE_NEW);
    assertEquals(body.previousImage, IMAGE_OLD);
    assertEquals(body.imageId, OLD_ID);
    assertEquals(body.requestId, "req-42");
    assertEquals(body.startedAt, "2026-11-29T12:00:00.000Z");
    assertEquals(body.finishedAt, "2026-11-29T12:00:42.000Z");
    assertEquals(body.durationMs, 42_000);
    assertEquals(body.downtimeMs, 3100);
    assertEquals(body.error, "the new container failed: exited with code 1");
    // The container's escape sequences never reach a chat or a receiver as control characters.
    assertEquals(body.logTail, ["starting", "panic: \\x1b[31mboom\\x1b[0m"]);
    assert(typeof body.id === "string" && typeof body.text === "string");
    assertEquals(outbox.entries.size, 0);
    assertEquals(state.state.channels.webhook.lastDelivery?.event, "update");
  });
});

Deno.test("webhook without a secret sends no signature header", async () => {
  await withReceiver({ status: 200 }, async (r) => {
    const { notifier } = setup([{ type: "webhook", url: `${r.url}/h` }]);
    await notifier.updateFinished(rolledBack());
    await notifier.deliverDue();
    assertEquals(r.requests[0].headers.get("x-hyperbot-signature"), null);
  });
});

Deno.test("telegram: POST <apiBase>/bot<token>/sendMessage with JSON {chat_id, text}; ok:true is delivered", async () => {
  await withReceiver(
    { status: 200, body: { ok: true, result: { message_id: 1 } } },
    async (r) => {
      const token = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";
      const { notifier } = setup([
        { type: "telegram", token, chatId: "-1001234567890", apiBase: r.url },
      ]);
      await notifier.updateFinished(rolledBack());
      const round = await notifier.deliverDue();
      assertEquals(round.delivered, 1);
      const req = r.requests[0];
      assertEquals(req.method, "POST");
      assertEquals(req.target, `/bot${token}/sendMessage`);
      assertMatch(req.headers.get("content-type") ?? "", /^application\/json/);
      const body = JSON.parse(req.body);
      assertEquals(Object.keys(body).sort(), ["chat_id", "text"]);
      assertEquals(body.chat_id, "-1001234567890");
      const first = body.text.split("\n")[0];
      // The lock screen's line: outcome, host, version.
      assertEquals(first, "❌ rolled back · srv-test-1 · app:2.2.8 failed, runs app:2.2.7");
      assertStringIncludes(body.text, `${IMAGE_OLD} (sha256:111111111111) → ${IMAGE_NEW}`);
      assertStringIncludes(body.text, "took 42 s, bot down 3.1 s");
      assertStringIncludes(body.text, "request: req-42");
      assertStringIncludes(body.text, "error: the new container failed: exited with code 1");
      assertStringIncludes(body.text, "  panic: \\x1b[31mboom\\x1b[0m");
      assert(!body.text.includes("\u001b"));
    },
  );
});

Deno.test("telegram: ok:false (HTTP 400) is a failed delivery, retried after 5 s, and the token stays out of the error", async () => {
  await withReceiver(
    {
      status: 400,
      body: { ok: false, error_code: 400, description: "Bad Request: chat not found" },
    },
    async (r) => {
      const token = "123456:SECRETSECRETSECRET";
      const { notifier, outbox, state, clock, logger } = setup([
        { type: "telegram", token, chatId: 42, apiBase: r.url },
      ]);
      await notifier.updateFinished(rolledBack());
      const round = await notifier.deliverDue();
      assertEquals(round.failed, 1);
      const [entry] = [...outbox.entries.values()];
      assertEquals(entry.attempts, 1);
      assertEquals(Date.parse(entry.nextAt) - clock.now().getTime(), 5_000);
      assertEquals(entry.lastError, "HTTP 400: Bad Request: chat not found");
      assertEquals(JSON.parse(r.requests[0].body).chat_id, 42);
      assertEquals(state.state.channels.telegram.lastFailure?.error, entry.lastError);
      assert(!JSON.stringify(logger.lines).includes("SECRETSECRETSECRET"));
    },
  );
});

Deno.test("dingtalk: msgtype text, and timestamp (ms) + sign = urlencode(base64(HmacSHA256(secret, timestamp+\\n+secret))) in the query", async () => {
  await withReceiver({ status: 200, body: { errcode: 0, errmsg: "ok" } }, async (r) => {
    const secret = "SECb1a2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3";
    const { notifier } = setup([
      { type: "dingtalk", url: `${r.url}/robot/send?access_token=tok123456789`, secret },
    ]);
    const before = Date.now();
    await notifier.updateFinished(rolledBack());
    assertEquals((await notifier.deliverDue()).delivered, 1);
    const req = r.requests[0];
    assertEquals(req.method, "POST");
    assertEquals(req.path, "/robot/send");
    const raw = Object.fromEntries(req.rawQuery.split("&").map((kv) => kv.split("=", 2)));
    assertEquals(Object.keys(raw).sort(), ["access_token", "sign", "timestamp"]);
    assertEquals(raw.access_token, "tok123456789");
    assertMatch(raw.timestamp, /^\d{13}$/);
    assert(Math.abs(Number(raw.timestamp) - before) < 60_000, "timestamp is now, in ms");
    // Independently: base64, then percent-encoded ('+', '/', '=' never travel raw).
    const expected = encodeURIComponent(hmacBase64(secret, `${raw.timestamp}\n${secret}`));
    assertEquals(raw.sign, expected);
    assertMatch(req.headers.get("content-type") ?? "", /^application\/json/);
    const body = JSON.parse(req.body);
    assertEquals(Object.keys(body).sort(), ["msgtype", "text"]);
    assertEquals(body.msgtype, "text");
    assertEquals(Object.keys(body.text), ["content"]);
    assertStringIncludes(body.text.content, "hyperbot-ops");
  });
});

Deno.test("dingtalk: HTTP 200 with errcode 310000 (sign not match) is a failed delivery", async () => {
  await withReceiver(
    { status: 200, body: { errcode: 310000, errmsg: "sign not match" } },
    async (r) => {
      const { notifier, outbox } = setup([
        { type: "dingtalk", url: `${r.url}/robot/send?access_token=tok123456789`, secret: "SECx" },
      ]);
      await notifier.updateFinished(rolledBack());
      assertEquals((await notifier.deliverDue()).failed, 1);
      assertEquals([...outbox.entries.values()][0].lastError, "errcode 310000: sign not match");
    },
  );
});

Deno.test("dingtalk without a secret adds no timestamp or sign", async () => {
  await withReceiver({ status: 200, body: { errcode: 0, errmsg: "ok" } }, async (r) => {
    const { notifier } = setup([{ type: "dingtalk", url: `${r.url}/robot/send?access_token=t0k` }]);
    await notifier.updateFinished(rolledBack());
    await notifier.deliverDue();
    assertEquals(r.requests[0].rawQuery, "access_token=t0k");
  });
});

Deno.test("feishu: msg_type text, with timestamp (s, string) and sign = base64(HmacSHA256 keyed timestamp+\\n+secret over '') in the body", async () => {
  await withReceiver({ status: 200, body: { code: 0, msg: "success", data: {} } }, async (r) => {
    const secret = "feishuSecret0123";
    const { notifier } = setup([
      {
        type: "feishu",
        url: `${r.url}/open-apis/bot/v2/hook/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0`,
        secret,
      },
    ]);
    const before = Math.floor(Date.now() / 1000);
    await notifier.updateFinished(rolledBack());
    assertEquals((await notifier.deliverDue()).delivered, 1);
    const req = r.requests[0];
    assertEquals(req.method, "POST");
    assertEquals(req.target, "/open-apis/bot/v2/hook/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
    assertMatch(req.headers.get("content-type") ?? "", /^application\/json/);
    const body = JSON.parse(req.body);
    assertEquals(Object.keys(body).sort(), ["content", "msg_type", "sign", "timestamp"]);
    assertEquals(typeof body.timestamp, "string");
    assertMatch(body.timestamp, /^\d{10}$/);
    assert(Math.abs(Number(body.timestamp) - before) < 60);
    const expected = createHmac("sha256", `${body.timestamp}\n${secret}`).update("").digest(
      "base64",
    );
    assertEquals(body.sign, expected);
    assertEquals(body.msg_type, "text");
    assertEquals(Object.keys(body.content), ["text"]);
    assertStringIncludes(body.content.text, "srv-test-1");
  });
});

Deno.test("feishu: code 19021 is a failed delivery; HTTP 500 too", async () => {
  await withReceiver(
    {
      status: 200,
      body: { code: 19021, msg: "sign match fail or timestamp is not within one hour", data: {} },
    },
    async (r) => {
      const { notifier, outbox } = setup([
        { type: "feishu", url: `${r.url}/open-apis/bot/v2/hook/abc`, secret: "s3cr3t-value" },
      ]);
      await notifier.updateFinished(rolledBack());
      assertEquals((await notifier.deliverDue()).failed, 1);
      assertMatch([...outbox.entries.values()][0].lastError ?? "", /^code 19021: sign match fail/);
      r.answer = { status: 500, body: "oops" };
      const clock = (notifier as unknown as { deps: { clock: FakeClock } }).deps.clock;
      await clock.sleep(5_000);
      assertEquals((await notifier.deliverDue()).failed, 1);
      assertEquals([...outbox.entries.values()][0].lastError, "HTTP 500");
      assertEquals([...outbox.entries.values()][0].attempts, 2);
    },
  );
});

Deno.test("wecom: msgtype text to the key URL; content within 2048 bytes; errcode != 0 is a failure", async () => {
  await withReceiver({ status: 200, body: { errcode: 0, errmsg: "ok" } }, async (r) => {
    const { notifier } = setup([
      {
        type: "wecom",
        url: `${r.url}/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa`,
      },
    ]);
    const report = rolledBack();
    report.logTail = Array.from({ length: 30 }, (_, i) => `行 ${i} ${"日志".repeat(100)}`);
    report.error = "错误".repeat(400);
    await notifier.updateFinished(report);
    assertEquals((await notifier.deliverDue()).delivered, 1);
    const req = r.requests[0];
    assertEquals(req.method, "POST");
    assertEquals(req.target, "/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa");
    const body = JSON.parse(req.body);
    assertEquals(Object.keys(body).sort(), ["msgtype", "text"]);
    assertEquals(body.msgtype, "text");
    assert(new TextEncoder().encode(body.text.content).length <= 2048);

    r.answer = { status: 200, body: { errcode: 93000, errmsg: "invalid webhook url" } };
    await notifier.updateFinished(rolledBack());
    const round = await notifier.deliverDue();
    assertEquals(round.failed, 1);
  });
});

Deno.test("a refused connection and a service that never answers are failed attempts (5 s limit per attempt)", async () => {
  const http = new FetchHttpOut();
  const port = closedPort();
  const refused = await http.send(
    { method: "POST", url: `http://127.0.0.1:${port}/x`, headers: {}, body: "{}" },
    5_000,
  ).then(() => null, (e: Error) => e.message);
  assertMatch(refused ?? "", /^cannot connect/);

  await withReceiver({ status: 200, delayMs: 60_000 }, async (r) => {
    const started = Date.now();
    const hung = await http.send({ method: "GET", url: `${r.url}/slow`, headers: {} }, 300)
      .then(() => null, (e: Error) => e.message);
    assertEquals(hung, "no answer within 0.3 s");
    assert(Date.now() - started < 5_000);
  });
});

Deno.test("the retry schedule: 5 s, 15 s, 30 s, 60 s, then every 5 minutes for an hour, then dropped with a log line", async () => {
  const port = closedPort();
  const { notifier, outbox, clock, logger } = setup([
    { type: "webhook", url: `http://127.0.0.1:${port}/h` },
  ]);
  await notifier.updateFinished(rolledBack());
  const waits: number[] = [];
  for (let i = 0; i < 40 && outbox.entries.size > 0; i++) {
    await notifier.deliverDue();
    const entry = [...outbox.entries.values()][0];
    if (!entry) break;
    const wait = Date.parse(entry.nextAt) - clock.now().getTime();
    waits.push(wait);
    await clock.sleep(wait);
  }
  assertEquals(waits, [5_000, 15_000, 30_000, 60_000, ...Array(12).fill(300_000)]);
  assertEquals(waits, [...RETRY_DELAYS_MS]);
  assertEquals(outbox.entries.size, 0);
  const dropped = logger.lines.find((l) =>
    l.message === "notification dropped after its last attempt"
  );
  assertEquals(dropped?.fields.attempts, 17);
});

Deno.test("a ping goes to <pingUrl> when all is well and to <pingUrl>/fail when not", async () => {
  await withReceiver({ status: 200, body: "OK" }, async (r) => {
    const uuid = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278";
    const { notifier, state } = setup([], { pingUrl: `${r.url}/${uuid}` });
    assertEquals((await notifier.ping(true))?.ok, true);
    assertEquals((await notifier.ping(false))?.ok, true);
    assertEquals(r.requests.map((q) => `${q.method} ${q.target}`), [
      `GET /${uuid}`,
      `GET /${uuid}/fail`,
    ]);
    assert(state.state.channels.ping.lastDelivery !== null);
    r.answer = { status: 404, body: "not found" };
    const failed = await notifier.ping(true);
    assertEquals(failed?.ok, false);
    assertEquals(failed?.error, "HTTP 404");
    assert(!failed?.target.includes(uuid), "the ping URL is shown redacted");
  });
});

Deno.test("every channel gets one message per notification, each retried on its own", async () => {
  const good = startReceiver({ status: 200, body: { errcode: 0, errmsg: "ok" } });
  const bad = startReceiver({ status: 500 });
  try {
    const { notifier, outbox } = setup([
      { type: "wecom", url: `${good.url}/cgi-bin/webhook/send?key=k1` },
      { type: "webhook", url: `${bad.url}/h` },
    ]);
    await notifier.updateFinished(rolledBack());
    const round = await notifier.deliverDue();
    assertEquals(round, { delivered: 1, failed: 1, dropped: 0, pending: 1 });
    assertEquals([...outbox.entries.values()].map((e) => e.channel), ["webhook"]);
    assertEquals(good.requests.length, 1);
  } finally {
    await good.close();
    await bad.close();
  }
});

Deno.test("unchanged and rejected are not sent unless notifyOutcomes lists them", async () => {
  const { notifier, outbox } = setup([{ type: "webhook", url: "http://127.0.0.1:9/h" }]);
  await notifier.updateFinished({ ...rolledBack(), outcome: "unchanged" });
  await notifier.updateFinished({ ...rolledBack(), outcome: "rejected" });
  assertEquals(outbox.entries.size, 0);
  await notifier.updateFinished({ ...rolledBack(), outcome: "updated" });
  assertEquals(outbox.entries.size, 1);
});

Deno.test("a burst of rejected triggers is one message at most per 10 minutes, with the count", async () => {
  const { notifier, outbox, clock } = setup([{ type: "webhook", url: "http://127.0.0.1:9/h" }]);
  notifier.settings.outcomes.push("rejected");
  const rejected = { ...rolledBack(), outcome: "rejected" as const, error: "bad trigger" };
  for (let i = 0; i < 25; i++) {
    await notifier.updateFinished(rejected);
    await clock.sleep(10_000);
  }
  // 25 rejections over 250 s: the first is sent, the other 24 wait for the window's end.
  assertEquals([...outbox.entries.values()].map((e) => e.notification.count), [1]);
  await notifier.flushRejected();
  assertEquals(outbox.entries.size, 1);
  await clock.sleep(10 * 60_000);
  await notifier.flushRejected();
  const counts = [...outbox.entries.values()].map((e) => e.notification.count).sort();
  assertEquals(counts, [1, 24]);
});

Deno.test("update's bounded wait: deliverWithin returns when its time is up, and what is not delivered stays queued", async () => {
  await withReceiver({ status: 200, delayMs: 60_000 }, async (r) => {
    const { notifier, outbox } = setup([{ type: "webhook", url: `${r.url}/slow` }]);
    await notifier.updateFinished(rolledBack());
    const started = Date.now();
    await notifier.deliverWithin(300);
    assert(Date.now() - started < 2_000, `waited ${Date.now() - started} ms`);
    assertEquals(outbox.entries.size, 1);
  });
});
