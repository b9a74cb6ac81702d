/**
 * The notification settings as an operator meets them: a bad channel is a configuration error
 * naming the entry (exit 3) and never echoes a secret; `notify --test` prints one line per
 * channel and the ping, exits 0 only when all took it, shows secrets as ***; and every request
 * honours HTTP_PROXY / NO_PROXY (Deno's fetch proxies loopback too unless NO_PROXY names it).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../../lib/config.ts";
import { ConfigError } from "../../lib/errors.ts";
import { runCli } from "../support/cli.ts";
import { closedPort, startProxy, startReceiver } from "../support/receiver.ts";

const noFile = () => null;

function configError(notify: unknown): ConfigError {
  try {
    loadConfig({ env: { HYPERBOT_OPS_NOTIFY: JSON.stringify(notify) }, readTextFile: noFile });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  throw new Error("expected a configuration error");
}

Deno.test("a bad notify entry is a configuration error (exit 3) naming the entry, without its secret", () => {
  const cases: [unknown, RegExp][] = [
    [
      [{ type: "slack", url: "https://x.example/SECRETVALUE1" }],
      /notify\[0\]: unknown type 'slack'/,
    ],
    [[{ type: "wecom", url: "https://q.example/send?key=SECRETVALUE1" }, {
      type: "telegram",
      chatId: "1",
    }], /notify\[1\]: missing 'token'/],
    [
      [{ type: "dingtalk", url: "ftp://oapi.example/robot?access_token=SECRETVALUE1" }],
      /notify\[0\]: 'url' must be an http:\/\/ or https:\/\/ URL/,
    ],
    [
      [{ type: "feishu", url: "https://open.feishu.cn/x", secret: "SECRETVALUE1", sercet: "x" }],
      /notify\[0\]: unknown field 'sercet'/,
    ],
    [
      [{ type: "telegram", token: "1:SECRETVALUE1/../x", chatId: "1" }],
      /notify\[0\]: 'token' must look like/,
    ],
    [{ type: "webhook" }, /expected a JSON list of channels/],
  ];
  for (const [notify, expected] of cases) {
    const err = configError(notify);
    assert.equal(err.exitCode, 3);
    assert.match(err.message, expected);
    assert.ok(!`${err.message} ${err.object} ${err.hint}`.includes("SECRETVALUE1"), err.message);
  }
});

Deno.test("notify defaults: zh, updated/rolled_back/failed, no ping; channels get default names", () => {
  const c = loadConfig({
    env: {
      HYPERBOT_OPS_NOTIFY: JSON.stringify([
        { type: "telegram", token: "1:abc", chatId: -100123 },
        { type: "telegram", token: "2:def", chatId: "@ops" },
      ]),
    },
    readTextFile: noFile,
  });
  assert.equal(c.notifyLanguage, "zh");
  assert.deepEqual(c.notifyOutcomes, ["updated", "rolled_back", "failed"]);
  assert.equal(c.pingUrl, null);
  assert.deepEqual(c.notify.map((n) => n.name), ["telegram", "telegram-2"]);
  assert.equal((c.notify[0] as { apiBase: string }).apiBase, "https://api.telegram.org");
});

async function tempConfig(settings: Record<string, unknown>) {
  const dir = await Deno.makeTempDir({ prefix: "hyperbot-notify-cli-" });
  const file = join(dir, "config.json");
  await Deno.writeTextFile(
    file,
    JSON.stringify({
      stateDir: join(dir, "state"),
      logDir: join(dir, "logs"),
      dataDir: join(dir, "data"),
      ...settings,
    }),
  );
  return { dir, file };
}

Deno.test("notify --test: one line per channel and the ping, exit 0 when all took it, 1 when one did not; secrets shown as ***", async () => {
  const tg = startReceiver({ status: 200, body: { ok: true, result: {} } });
  const wecom = startReceiver({ status: 200, body: { errcode: 0, errmsg: "ok" } });
  const hc = startReceiver({ status: 200, body: "OK" });
  const { dir, file } = await tempConfig({
    notify: [
      { type: "telegram", token: "123:TOKENSECRET", chatId: "42", apiBase: tg.url },
      { type: "wecom", url: `${wecom.url}/cgi-bin/webhook/send?key=WECOMKEYSECRET` },
    ],
    pingUrl: `${hc.url}/5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278`,
    notifyLanguage: "en",
  });
  try {
    const env = { NO_PROXY: "127.0.0.1,localhost" };
    const ok = await runCli(["notify", "--test", "--config", file], { env });
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const lines = ok.stdout.trim().split("\n");
    assert.equal(lines.length, 3, ok.stdout);
    assert.match(lines[0], /^telegram .* delivered$/);
    assert.match(lines[1], /^wecom .*key=\*\*\* +delivered$/);
    assert.match(lines[2], /^ping .* delivered$/);
    assert.match(JSON.parse(tg.requests[0].body).text, /^🔔 test message · /);
    assert.equal(hc.requests[0].target, "/5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278");

    wecom.answer = { status: 200, body: { errcode: 93000, errmsg: "invalid webhook url" } };
    const bad = await runCli(["notify", "--test", "--config", file], { env });
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /wecom .* not delivered: errcode 93000: invalid webhook url/);
    const status = await runCli(["status", "--json", "--config", file], { env });
    const notify = JSON.parse(status.stdout).notify;
    assert.deepEqual(notify.map((n: { name: string }) => n.name), ["telegram", "wecom", "ping"]);
    assert.equal(notify[1].lastFailure.error, "errcode 93000: invalid webhook url");
    assert.ok(notify[0].lastDelivery.at);
    for (const text of [ok.stdout, ok.stderr, bad.stdout, bad.stderr, status.stdout]) {
      assert.ok(!/TOKENSECRET|WECOMKEYSECRET|5bf66975/.test(text), text);
    }
  } finally {
    await tg.close();
    await wecom.close();
    await hc.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("notify --test goes through HTTP_PROXY, also to loopback, unless NO_PROXY names the host", async () => {
  const receiver = startReceiver({ status: 200 });
  const proxy = startProxy();
  const { dir, file } = await tempConfig({
    notify: [{ type: "webhook", url: `${receiver.url}/hook` }],
  });
  try {
    const viaProxy = await runCli(["notify", "--test", "--config", file], {
      env: { HTTP_PROXY: proxy.url, NO_PROXY: "" },
    });
    assert.equal(viaProxy.code, 0, viaProxy.stdout + viaProxy.stderr);
    assert.deepEqual(proxy.seen, [`${receiver.url}/hook`]);
    assert.equal(receiver.requests.length, 1);

    const direct = await runCli(["notify", "--test", "--config", file], {
      env: { HTTP_PROXY: proxy.url, NO_PROXY: "127.0.0.1" },
    });
    assert.equal(direct.code, 0);
    assert.equal(proxy.seen.length, 1, "NO_PROXY: straight to the receiver");
    assert.equal(receiver.requests.length, 2);

    // A proxy that is down: the channel is reported as not delivered, nothing hangs.
    const down = await runCli(["notify", "--test", "--config", file], {
      env: { HTTP_PROXY: `http://127.0.0.1:${closedPort()}`, NO_PROXY: "" },
    });
    assert.equal(down.code, 1);
    assert.match(down.stdout, /webhook .* not delivered: /);
  } finally {
    await receiver.close();
    await proxy.close();
    await Deno.remove(dir, { recursive: true });
  }
});
