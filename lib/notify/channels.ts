/**
 * The notification settings: the `notify` list of channels, `notifyLanguage`, `notifyOutcomes`
 * and `pingUrl`. Parsed and checked here so a bad entry is a configuration error naming it
 * (`notify[2]`), never a message that silently goes nowhere. Pure: no I/O.
 */

import { ConfigError } from "../errors.ts";
import type { Outcome } from "../update/report.ts";

// deno-lint-ignore no-control-regex
const CONTROL_OR_SPACE = /[\s\u0000-\u001f\u007f]/;

export type ChannelType = "webhook" | "telegram" | "dingtalk" | "feishu" | "wecom";
export const CHANNEL_TYPES: ChannelType[] = ["webhook", "telegram", "dingtalk", "feishu", "wecom"];

interface ChannelBase {
  /** Shown in status, logs and `notify --test`; unique. Defaults to the type (`telegram-2`…). */
  name: string;
}
export type ChannelConfig =
  | ChannelBase & { type: "webhook"; url: string; secret?: string }
  | ChannelBase & { type: "telegram"; token: string; chatId: string | number; apiBase: string }
  | ChannelBase & { type: "dingtalk"; url: string; secret?: string }
  | ChannelBase & { type: "feishu"; url: string; secret?: string }
  | ChannelBase & { type: "wecom"; url: string };

export type NotifyLanguage = "zh" | "en";
export const NOTIFY_LANGUAGES: NotifyLanguage[] = ["zh", "en"];

export const TELEGRAM_API_BASE = "https://api.telegram.org";

/** Outcomes sent by default; `unchanged` and `rejected` only when `notifyOutcomes` lists them. */
export const DEFAULT_NOTIFY_OUTCOMES: Outcome[] = ["updated", "rolled_back", "failed"];
export const ALL_OUTCOMES: Outcome[] = [
  "updated",
  "unchanged",
  "rolled_back",
  "failed",
  "rejected",
];

const FIELDS: Record<ChannelType, { required: string[]; optional: string[] }> = {
  webhook: { required: ["url"], optional: ["secret"] },
  telegram: { required: ["token", "chatId"], optional: ["apiBase"] },
  dingtalk: { required: ["url"], optional: ["secret"] },
  feishu: { required: ["url"], optional: ["secret"] },
  wecom: { required: ["url"], optional: [] },
};

/**
 * Checks the `notify` list (a JSON array of channel objects) and fills in defaults.
 * Throws ConfigError naming `notify[i]` and the field; never echoes a value (it may be a secret).
 */
export function parseChannels(raw: unknown, source: string): ChannelConfig[] {
  const list = typeof raw === "string" ? parseJsonList(raw, source) : raw;
  if (!Array.isArray(list)) {
    throw new ConfigError("invalid value for 'notify': expected a JSON list of channels", {
      object: source,
      hint: 'e.g. [{ "type": "telegram", "token": "…", "chatId": "…" }]',
    });
  }
  const channels: ChannelConfig[] = [];
  const counts = new Map<string, number>();
  list.forEach((entry, i) => {
    const where = `notify[${i}]`;
    const bad = (why: string, hint?: string) =>
      new ConfigError(`invalid channel ${where}: ${why}`, { object: source, hint });
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw bad("expected an object with a 'type'");
    }
    const e = entry as Record<string, unknown>;
    const type = e.type;
    if (typeof type !== "string" || !CHANNEL_TYPES.includes(type as ChannelType)) {
      throw bad(
        typeof type === "string" ? `unknown type '${safeWord(type)}'` : "missing 'type'",
        `known types: ${CHANNEL_TYPES.join(", ")}`,
      );
    }
    const spec = FIELDS[type as ChannelType];
    const known = ["type", "name", ...spec.required, ...spec.optional];
    for (const key of Object.keys(e)) {
      if (!known.includes(key)) {
        throw bad(`unknown field '${safeWord(key)}'`, `fields of ${type}: ${known.join(", ")}`);
      }
    }
    for (const key of spec.required) {
      const v = e[key];
      const empty = v === undefined || v === null || v === "";
      if (empty) throw bad(`missing '${key}'`);
    }
    const text = (key: string): string | undefined => {
      const v = e[key];
      if (v === undefined) return undefined;
      if (typeof v !== "string" || v === "" || CONTROL_OR_SPACE.test(v)) {
        throw bad(`'${key}' must be a non-empty string without spaces or control characters`);
      }
      return v;
    };
    const url = (key: string): string | undefined => {
      const v = text(key);
      if (v === undefined) return undefined;
      if (!isHttpUrl(v)) throw bad(`'${key}' must be an http:// or https:// URL`);
      return v;
    };
    let name: string;
    if (e.name !== undefined) {
      if (typeof e.name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$/.test(e.name)) {
        throw bad("'name' must be 1 to 40 letters, digits, '_', '.' or '-'");
      }
      name = e.name;
    } else {
      const n = (counts.get(type) ?? 0) + 1;
      counts.set(type, n);
      name = n === 1 ? type : `${type}-${n}`;
    }
    if (channels.some((c) => c.name === name)) {
      throw bad(`the name '${name}' is used twice`, "give each channel its own 'name'");
    }
    switch (type as ChannelType) {
      case "webhook":
      case "dingtalk":
      case "feishu": {
        const secret = text("secret");
        channels.push({
          type: type as "webhook",
          name,
          url: url("url")!,
          ...(secret ? { secret } : {}),
        });
        break;
      }
      case "wecom":
        channels.push({ type: "wecom", name, url: url("url")! });
        break;
      case "telegram": {
        const token = text("token")!;
        // The token goes into the URL's path: a '/' or '?' would send it somewhere else.
        if (!/^[A-Za-z0-9:_-]+$/.test(token)) {
          throw bad("'token' must look like 123456:ABC-DEF… (letters, digits, ':', '_', '-')");
        }
        const chatId = e.chatId;
        if (
          !(typeof chatId === "number" && Number.isSafeInteger(chatId)) &&
          !(typeof chatId === "string" && /^(-?\d{1,20}|@[A-Za-z0-9_]{1,64})$/.test(chatId))
        ) {
          throw bad("'chatId' must be a chat id (-100123…) or a channel name (@name)");
        }
        const apiBase = url("apiBase") ?? TELEGRAM_API_BASE;
        channels.push({
          type: "telegram",
          name,
          token,
          chatId: chatId as string | number,
          apiBase: apiBase.replace(/\/+$/, ""),
        });
        break;
      }
    }
  });
  return channels;
}

export function parseLanguage(raw: unknown, source: string): NotifyLanguage {
  if (typeof raw !== "string" || !NOTIFY_LANGUAGES.includes(raw as NotifyLanguage)) {
    throw new ConfigError("invalid value for 'notifyLanguage': expected 'zh' or 'en'", {
      object: source,
    });
  }
  return raw as NotifyLanguage;
}

export function parseOutcomes(raw: unknown, source: string): Outcome[] {
  const list = typeof raw === "string" ? raw.split(",").map((s) => s.trim()).filter(Boolean) : raw;
  if (
    !Array.isArray(list) ||
    list.some((o) => typeof o !== "string" || !ALL_OUTCOMES.includes(o as Outcome))
  ) {
    throw new ConfigError(
      `invalid value for 'notifyOutcomes': expected a list of ${ALL_OUTCOMES.join(", ")}`,
      { object: source },
    );
  }
  return [...new Set(list as Outcome[])];
}

export function parsePingUrl(raw: unknown, source: string): string {
  if (typeof raw !== "string" || !isHttpUrl(raw) || CONTROL_OR_SPACE.test(raw)) {
    throw new ConfigError("invalid value for 'pingUrl': expected an http:// or https:// URL", {
      object: source,
      hint: "e.g. https://hc-ping.com/<uuid>",
    });
  }
  return raw.replace(/\/+$/, "");
}

function parseJsonList(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ConfigError("invalid value for 'notify': not valid JSON", { object: source });
  }
}

export function isHttpUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return (u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "";
  } catch {
    return false;
  }
}

/** A type or key name for an error message: short, and only harmless characters. */
function safeWord(text: string): string {
  const word = text.slice(0, 30).replace(/[^A-Za-z0-9_.-]/g, "?");
  return text.length > 30 ? `${word}…` : word;
}
