/**
 * A notification as a short text for a chat, in Chinese or English. A phone's lock screen shows
 * the first line, so it carries the outcome, the host and the version; the lines after it say
 * which container, old → new image with short digests, how long it took and how long the bot
 * was down, the request id, the error and the failed container's last output. Pure.
 */

import type { NotifyLanguage } from "./channels.ts";
import type { Notification } from "./events.ts";

type Words = {
  updated: string;
  unchanged: string;
  rolled_back: string;
  failed: string;
  rejected: (count: number) => string;
  rollback_unfinished: string;
  rollback_finished: string;
  watcher_restarted: string;
  watcher_restart_failed: string;
  docker_unreachable: string;
  docker_reachable: string;
  test: string;
  container: string;
  image: string;
  runs: string;
  failedNew: string;
  took: string;
  down: string;
  request: string;
  error: string;
  detail: string;
  warning: string;
  logs: string;
  testBody: string;
};

const WORDS: Record<NotifyLanguage, Words> = {
  en: {
    updated: "✅ updated",
    unchanged: "➖ unchanged",
    rolled_back: "❌ rolled back",
    failed: "❌ update failed",
    rejected: (n) => n > 1 ? `⚠️ ${n} update requests rejected` : "⚠️ update request rejected",
    rollback_unfinished: "🚨 rollback unfinished",
    rollback_finished: "✅ unfinished update completed",
    watcher_restarted: "🔧 watcher restarted",
    watcher_restart_failed: "🚨 watcher down, restart failed",
    docker_unreachable: "🚨 Docker unreachable for 5 min",
    docker_reachable: "✅ Docker reachable again",
    test: "🔔 test message",
    container: "container",
    image: "image",
    runs: "runs",
    failedNew: "failed",
    took: "took",
    down: "bot down",
    request: "request",
    error: "error",
    detail: "detail",
    warning: "⚠️ warning",
    logs: "last output of the new container:",
    testBody: "hyperbot-ops can reach this channel.",
  },
  zh: {
    updated: "✅ 更新成功",
    unchanged: "➖ 无需更新",
    rolled_back: "❌ 更新失败,已回滚",
    failed: "❌ 更新失败",
    rejected: (n) => n > 1 ? `⚠️ ${n} 个更新请求被拒绝` : "⚠️ 更新请求被拒绝",
    rollback_unfinished: "🚨 回滚未完成",
    rollback_finished: "✅ 未完成的更新已处理完毕",
    watcher_restarted: "🔧 监控进程已重启",
    watcher_restart_failed: "🚨 监控进程停止,重启失败",
    docker_unreachable: "🚨 Docker 已 5 分钟无法连接",
    docker_reachable: "✅ Docker 已恢复连接",
    test: "🔔 测试消息",
    container: "容器",
    image: "镜像",
    runs: "运行",
    failedNew: "失败",
    took: "耗时",
    down: "停机",
    request: "请求",
    error: "错误",
    detail: "详情",
    warning: "⚠️ 警告",
    logs: "新容器最后的输出:",
    testBody: "hyperbot-ops 可以向此频道发送消息。",
  },
};

/** The whole message. */
export function renderText(n: Notification, language: NotifyLanguage): string {
  const w = WORDS[language];
  const lines = [firstLine(n, w)];
  if (n.event === "test") lines.push(w.testBody);
  if (n.event !== "test" && n.container) lines.push(`${w.container}: ${n.container}`);
  if (n.image || n.previousImage) {
    const from = imageWithDigest(n.previousImage, n.previousImageId);
    const to = n.outcome === "rolled_back" || n.outcome === "failed"
      ? imageWithDigest(n.image, null)
      : imageWithDigest(n.image, n.imageId);
    lines.push(`${w.image}: ${from} → ${to}`);
  }
  const times: string[] = [];
  if (n.durationMs !== null) times.push(`${w.took} ${formatDuration(n.durationMs)}`);
  if (n.downtimeMs !== null) times.push(`${w.down} ${formatDuration(n.downtimeMs)}`);
  if (times.length) lines.push(times.join(", "));
  if (n.requestId) lines.push(`${w.request}: ${n.requestId}`);
  if (n.error) lines.push(`${w.error}: ${n.error}`);
  if (n.detail) lines.push(`${w.detail}: ${n.detail}`);
  for (const warning of n.warnings ?? []) lines.push(`${w.warning}: ${warning}`);
  if (n.logTail.length) lines.push(w.logs, ...n.logTail.map((l) => `  ${l}`));
  lines.push(`— hyperbot-ops ${n.at}`);
  return lines.join("\n");
}

/** Outcome, host and version: what a lock screen shows. */
function firstLine(n: Notification, w: Words): string {
  const head = n.event === "update"
    ? n.outcome === "rejected" ? w.rejected(n.count) : w[n.outcome ?? "failed"]
    : w[n.event as Exclude<Notification["event"], "update">];
  const parts = [head, n.host];
  const version = shortImage(n.image);
  const previous = shortImage(n.previousImage);
  if (n.outcome === "rolled_back" || (n.outcome === "failed" && n.event === "update")) {
    if (version) {
      parts.push(previous ? `${version} ${w.failedNew}, ${w.runs} ${previous}` : version);
    }
  } else if (n.outcome === "updated" && previous && previous !== version) {
    parts.push(`${previous} → ${version}`);
  } else if (version) {
    parts.push(version);
  }
  return parts.join(" · ");
}

/** `app:2.2.8` from `registry.example.com/org/app:2.2.8`. */
export function shortImage(ref: string | null): string | null {
  if (!ref) return null;
  const last = ref.slice(ref.lastIndexOf("/") + 1);
  return last.length > 60 ? `${last.slice(0, 60)}…` : last;
}

/** `registry/org/app:2.2.8 (sha256:0123456789ab)` */
function imageWithDigest(ref: string | null, id: string | null): string {
  const digest = id ? ` (${shortDigest(id)})` : "";
  return `${ref ?? "?"}${digest}`;
}

export function shortDigest(id: string): string {
  const m = /^(sha256:)?([0-9a-f]{12})/.exec(id);
  return m ? `sha256:${m[2]}` : id.slice(0, 19);
}

/** `0.4 s`, `42 s`, `3 min 5 s`, `1 h 2 min`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "?";
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 120) return `${min} min ${s % 60} s`;
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}

/** Cuts a text to at most `maxBytes` of UTF-8, on a character boundary, marking the cut. */
export function fitBytes(text: string, maxBytes: number): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= maxBytes) return text;
  let cut = maxBytes - 3; // room for "…"
  // Step back to the start of a UTF-8 character.
  while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut--;
  return new TextDecoder().decode(bytes.subarray(0, cut)) + "…";
}
