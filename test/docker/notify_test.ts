/**
 * Notifications from the real `watch` against the real Docker engine and the test registry
 * (scripts/test-env.sh): a trigger for the crash image ends in `rolled_back`, and every channel
 * (webhook, Telegram, DingTalk, Feishu, WeCom, each a local server on 127.0.0.1 that checks the
 * request as the service documents it) gets one message naming the host and both images; a
 * receiver that is down during the update gets the message after it comes back (the outbox's
 * retry after 5 s, 15 s, …).
 */

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { join } from "node:path";
import { runCommand } from "../../lib/adapters/run_command.ts";
import type { StatusFile } from "../../lib/update/report.ts";
import type { Heartbeat } from "../../lib/watch/heartbeat.ts";
import { startCli } from "../support/cli.ts";
import {
  IMAGES,
  REPOSITORY,
  requireTestEnv,
  TEST_DOCKER_CONFIG,
  uniqueName,
} from "../support/env.ts";
import { closedPort, type ReceivedRequest, startReceiver } from "../support/receiver.ts";
import { eventually } from "../support/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch {
    return null;
  }
}

/** The text a chat channel shows, from its documented request body. */
function chatText(type: string, req: ReceivedRequest): string {
  const body = JSON.parse(req.body);
  switch (type) {
    case "telegram":
      return body.text;
    case "feishu":
      return body.content.text;
    case "webhook":
      return body.text;
    default:
      return body.text.content;
  }
}

Deno.test(
  "watch: a crash image ends rolled_back; every channel gets one message naming the host and both images, a receiver down during the update gets it once it is back",
  opts,
  async () => {
    await requireTestEnv();
    const name = uniqueName("hbt-notify");
    const base = await Deno.makeTempDir({ prefix: `${name}-` });
    const dataDir = join(base, "data");
    const stateDir = join(base, "state");
    await Deno.mkdir(dataDir);

    const webhookSecret = "whsec-e2e-0123456789";
    const dingSecret = "SEC0123456789abcdef0123456789abcdef";
    const feishuSecret = "feishu-e2e-secret";
    const receivers = {
      webhook: startReceiver({ status: 200 }),
      telegram: startReceiver({ status: 200, body: { ok: true, result: {} } }),
      dingtalk: startReceiver({ status: 200, body: { errcode: 0, errmsg: "ok" } }),
      feishu: startReceiver({ status: 200, body: { code: 0, msg: "success", data: {} } }),
      wecom: startReceiver({ status: 200, body: { errcode: 0, errmsg: "ok" } }),
    };
    const latePort = closedPort();
    const notify = [
      { type: "webhook", url: `${receivers.webhook.url}/hook`, secret: webhookSecret },
      { type: "telegram", token: "123:e2eTOKEN", chatId: "42", apiBase: receivers.telegram.url },
      {
        type: "dingtalk",
        url: `${receivers.dingtalk.url}/robot/send?access_token=e2etoken`,
        secret: dingSecret,
      },
      {
        type: "feishu",
        url: `${receivers.feishu.url}/open-apis/bot/v2/hook/e2e-hook-0123456789`,
        secret: feishuSecret,
      },
      { type: "wecom", url: `${receivers.wecom.url}/cgi-bin/webhook/send?key=e2e-key-0123` },
      { type: "webhook", name: "late", url: `http://127.0.0.1:${latePort}/late` },
    ];
    await Deno.writeTextFile(
      join(base, "config.json"),
      JSON.stringify({ notify, notifyLanguage: "en" }),
    );
    await runCommand(
      "docker",
      ["run", "-d", "--name", name, "-v", `${dataDir}:/shared`, IMAGES.v1],
      {
        timeoutMs: 120_000,
      },
    );
    const watch = startCli([
      "watch",
      "--config",
      join(base, "config.json"),
      "--base-dir",
      base,
      "--state-dir",
      stateDir,
      "--container",
      name,
      "--allowed-image",
      REPOSITORY,
      "--stable-seconds",
      "3",
      "--health-timeout",
      "10",
      "--keep-images",
      "50",
    ], { env: { DOCKER_CONFIG: TEST_DOCKER_CONFIG, NO_PROXY: "127.0.0.1,localhost" } });
    const describe = async () =>
      `status: ${await Deno.readTextFile(join(dataDir, ".update_status.json")).catch(String)}\n` +
      `outbox: ${JSON.stringify(await outbox())}\nwatch output:\n${watch.output().slice(-4000)}`;
    const outbox = async () => {
      const out: { channel: string; attempts: number }[] = [];
      try {
        for await (const e of Deno.readDir(join(stateDir, "notify", "outbox"))) {
          if (!e.name.endsWith(".json") || e.name.startsWith(".")) continue;
          const entry = await readJson<{ channel: string; attempts: number }>(
            join(stateDir, "notify", "outbox", e.name),
          );
          if (entry) out.push({ channel: entry.channel, attempts: entry.attempts });
        }
      } catch {
        // No outbox yet.
      }
      return out;
    };
    try {
      await eventually("watch ready", async () => {
        const hb = await readJson<Heartbeat>(join(stateDir, "heartbeat.json"));
        return hb?.pid === watch.child.pid && hb.state === "idle";
      }, { timeoutMs: 60_000, describe });
      await Deno.writeTextFile(
        join(dataDir, ".update_trigger"),
        JSON.stringify({ image: IMAGES.crash, id: "req-notify-e2e" }),
      );
      const final = await eventually("rolled_back", async () => {
        const s = await readJson<StatusFile>(join(dataDir, ".update_status.json"));
        return s?.finishedAt && s.requestId === "req-notify-e2e" ? s : null;
      }, { timeoutMs: 120_000, describe });
      assert.equal(final.state, "rolled_back");

      const host = Deno.hostname();
      for (const [type, r] of Object.entries(receivers)) {
        const [req] = await eventually(
          `a message on ${type}`,
          () => Promise.resolve(r.requests.length ? r.requests : null),
          { timeoutMs: 30_000, describe },
        );
        const text = chatText(type, req);
        const first = text.split("\n")[0];
        assert.match(first, /rolled back/, `${type}: ${first}`);
        assert.ok(first.includes(host), `${type}: the first line names the host: ${first}`);
        assert.ok(text.includes(IMAGES.crash) && text.includes(IMAGES.v1), `${type}: ${text}`);
        assert.ok(text.includes("req-notify-e2e"), text);
      }
      // Signed as documented, checked here independently.
      const hook = receivers.webhook.requests[0];
      assert.equal(
        hook.headers.get("x-hyperbot-signature"),
        `sha256=${createHmac("sha256", webhookSecret).update(hook.body).digest("hex")}`,
      );
      const body = JSON.parse(hook.body);
      assert.equal(body.schema, 1);
      assert.equal(body.outcome, "rolled_back");
      assert.equal(body.image, IMAGES.crash);
      assert.equal(body.previousImage, IMAGES.v1);
      assert.equal(body.host, host);
      assert.equal(typeof body.downtimeMs, "number");
      assert.ok(body.logTail.length <= 10);
      const q = new URLSearchParams(receivers.dingtalk.requests[0].rawQuery);
      assert.equal(
        q.get("sign"),
        createHmac("sha256", dingSecret).update(`${q.get("timestamp")}\n${dingSecret}`).digest(
          "base64",
        ),
      );
      const fs = JSON.parse(receivers.feishu.requests[0].body);
      assert.equal(
        fs.sign,
        createHmac("sha256", `${fs.timestamp}\n${feishuSecret}`).update("").digest("base64"),
      );

      // The late receiver was down: its entry waits in the outbox with a failed attempt.
      await eventually(
        "a failed attempt for the late receiver",
        async () => (await outbox()).some((e) => e.channel === "late" && e.attempts >= 1),
        {
          timeoutMs: 30_000,
          describe,
        },
      );
      // Now it comes back, on the port the config names.
      const lateRequests: string[] = [];
      const server = Deno.serve(
        { hostname: "127.0.0.1", port: latePort, onListen() {} },
        async (req) => {
          lateRequests.push(await req.text());
          return new Response("{}", { status: 200 });
        },
      );
      try {
        await eventually(
          "the late receiver gets the message",
          () => Promise.resolve(lateRequests.length > 0),
          { timeoutMs: 90_000, describe },
        );
        const lateBody = JSON.parse(lateRequests[0]);
        assert.equal(lateBody.outcome, "rolled_back");
        assert.equal(lateBody.id, body.id, "the same notification, retried");
        await eventually("the outbox is empty", async () => (await outbox()).length === 0, {
          timeoutMs: 10_000,
          describe,
        });
        // One message each: nothing was sent twice.
        for (const [type, r] of Object.entries(receivers)) {
          assert.equal(r.requests.length, 1, `${type} got ${r.requests.length} messages`);
        }
        assert.equal(lateRequests.length, 1);
      } finally {
        await server.shutdown();
      }
    } finally {
      await watch.stop();
      for (const r of Object.values(receivers)) await r.close();
      for (const n of [name, `${name}-previous`, `${name}-updating`]) {
        await runCommand("docker", ["rm", "-f", n], { timeoutMs: 60_000 }).catch(() => {});
      }
      await Deno.remove(base, { recursive: true }).catch(() => {});
    }
  },
);
