/**
 * Each service's documented request and answer:
 *
 * - webhook: POST of the notification as JSON (schema 1) plus `text`; with a secret, the header
 *   `X-Hyperbot-Signature: sha256=<hex HMAC-SHA256(secret, body)>`. Any 2xx is delivered.
 * - telegram: Bot API `POST <apiBase>/bot<token>/sendMessage`, JSON `{chat_id, text}`; the
 *   answer is `{"ok": true, …}` or `{"ok": false, "error_code", "description"}`.
 * - dingtalk: custom robot, `POST <url>` with `{"msgtype":"text","text":{"content"}}`; with a
 *   secret, `&timestamp=<ms>&sign=<urlencode(base64(HmacSHA256(key=secret,
 *   timestamp+"\n"+secret)))>`. It answers HTTP 200 with `{"errcode":0,"errmsg":"ok"}`; a
 *   non-zero errcode is a failure.
 * - feishu: custom bot v2 hook, `POST <url>` with `{"msg_type":"text","content":{"text"}}`; with
 *   a secret, body fields `timestamp` (seconds, a string) and `sign` = base64(HmacSHA256 keyed
 *   with timestamp+"\n"+secret over an empty message). Answer `{"code":0,…}`; older deployments
 *   answer `{"StatusCode":0,…}`. A non-zero code is a failure.
 * - wecom: group robot, `POST <url>` with `{"msgtype":"text","text":{"content"}}` (content at
 *   most 2048 bytes); answer `{"errcode":0,"errmsg":"ok"}`.
 * - ping (healthchecks.io): `GET <pingUrl>` when all is well, `GET <pingUrl>/fail` when not;
 *   "200 OK" is success.
 *
 * Pure apart from the HMACs (Web Crypto).
 */

import type { ChannelConfig } from "./channels.ts";
import type { Notification } from "./events.ts";
import { fitBytes } from "./messages.ts";

export interface HttpRequest {
  method: "GET" | "POST";
  url: string;
  headers: Record<string, string>;
  body?: string;
}

export interface HttpAnswer {
  status: number;
  /** The answer's body, at most a few KiB. */
  body: string;
}

export type Verdict = { ok: true } | { ok: false; error: string };

export const SIGNATURE_HEADER = "X-Hyperbot-Signature";
const JSON_HEADERS = { "Content-Type": "application/json; charset=utf-8" };

/** Text limits of the services (WeCom: 2048 bytes; Telegram: 4096 characters). */
const MAX_TEXT_BYTES: Record<ChannelConfig["type"], number> = {
  webhook: 8000,
  telegram: 4000,
  dingtalk: 4000,
  feishu: 4000,
  wecom: 2040,
};

/** The request that delivers `text` (the rendered notification) to a channel, signed at `now`. */
export async function buildRequest(
  channel: ChannelConfig,
  notification: Notification,
  text: string,
  now: Date,
): Promise<HttpRequest> {
  const content = fitBytes(text, MAX_TEXT_BYTES[channel.type]);
  switch (channel.type) {
    case "webhook": {
      const body = JSON.stringify({ ...notification, text: content });
      const headers: Record<string, string> = { ...JSON_HEADERS };
      if (channel.secret) {
        headers[SIGNATURE_HEADER] = `sha256=${toHex(await hmacSha256(channel.secret, body))}`;
      }
      return { method: "POST", url: channel.url, headers, body };
    }
    case "telegram":
      return {
        method: "POST",
        url: `${channel.apiBase}/bot${channel.token}/sendMessage`,
        headers: { ...JSON_HEADERS },
        body: JSON.stringify({ chat_id: channel.chatId, text: content }),
      };
    case "dingtalk": {
      const url = new URL(channel.url);
      if (channel.secret) {
        const timestamp = String(now.getTime());
        const sign = toBase64(await hmacSha256(channel.secret, `${timestamp}\n${channel.secret}`));
        url.searchParams.set("timestamp", timestamp);
        // URLSearchParams percent-encodes '+', '/' and '=': the documented urlEncode.
        url.searchParams.set("sign", sign);
      }
      return {
        method: "POST",
        url: url.toString(),
        headers: { ...JSON_HEADERS },
        body: JSON.stringify({ msgtype: "text", text: { content } }),
      };
    }
    case "feishu": {
      const signed: Record<string, string> = {};
      if (channel.secret) {
        const timestamp = String(Math.floor(now.getTime() / 1000));
        signed.timestamp = timestamp;
        signed.sign = toBase64(await hmacSha256(`${timestamp}\n${channel.secret}`, ""));
      }
      return {
        method: "POST",
        url: channel.url,
        headers: { ...JSON_HEADERS },
        body: JSON.stringify({ ...signed, msg_type: "text", content: { text: content } }),
      };
    }
    case "wecom":
      return {
        method: "POST",
        url: channel.url,
        headers: { ...JSON_HEADERS },
        body: JSON.stringify({ msgtype: "text", text: { content } }),
      };
  }
}

/** Whether the service took the message, from its documented answer. */
export function judgeAnswer(channel: ChannelConfig, answer: HttpAnswer): Verdict {
  const json = parseJson(answer.body);
  const httpOk = answer.status >= 200 && answer.status < 300;
  switch (channel.type) {
    case "webhook":
      return httpOk ? { ok: true } : { ok: false, error: `HTTP ${answer.status}` };
    case "telegram": {
      if (httpOk && json?.ok === true) return { ok: true };
      const why = typeof json?.description === "string" ? `: ${json.description}` : "";
      return { ok: false, error: `HTTP ${answer.status}${why}` };
    }
    case "dingtalk":
    case "wecom": {
      if (!httpOk) return { ok: false, error: `HTTP ${answer.status}` };
      if (json === null || typeof json.errcode !== "number") {
        return { ok: false, error: "the answer has no errcode" };
      }
      if (json.errcode !== 0) {
        return { ok: false, error: `errcode ${json.errcode}: ${String(json.errmsg ?? "")}` };
      }
      return { ok: true };
    }
    case "feishu": {
      if (!httpOk) {
        const why = json && typeof json.msg === "string" ? `: ${json.msg}` : "";
        return { ok: false, error: `HTTP ${answer.status}${why}` };
      }
      const code = typeof json?.code === "number"
        ? json.code
        : typeof json?.StatusCode === "number"
        ? json.StatusCode
        : null;
      if (code === null) return { ok: false, error: "the answer has no code" };
      if (code !== 0) {
        return {
          ok: false,
          error: `code ${code}: ${String(json?.msg ?? json?.StatusMessage ?? "")}`,
        };
      }
      return { ok: true };
    }
  }
}

/** The dead-man's switch ping: `<pingUrl>` when all is well, `<pingUrl>/fail` when not. */
export function pingRequest(pingUrl: string, ok: boolean): HttpRequest {
  return { method: "GET", url: ok ? pingUrl : `${pingUrl}/fail`, headers: {} };
}

export function judgePing(answer: HttpAnswer): Verdict {
  return answer.status >= 200 && answer.status < 300
    ? { ok: true }
    : { ok: false, error: `HTTP ${answer.status}` };
}

function parseJson(text: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

async function hmacSha256(key: string, message: string): Promise<Uint8Array> {
  const enc = new TextEncoder();
  const k = await crypto.subtle.importKey(
    "raw",
    enc.encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, enc.encode(message)));
}

function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}
