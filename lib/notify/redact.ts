/**
 * Secrets of the notification channels (bot tokens, signing secrets, webhook URLs with keys in
 * them) never reach a log line, the status file, `status`, `install` or an error message. Every
 * text that leaves the notify code is passed through `scrub`, and channels are shown by `target`,
 * a form with the secret parts replaced by `***`. Pure.
 */

import type { ChannelConfig } from "./channels.ts";

export const REDACTED = "***";

/** How a channel is shown: where it goes, without anything that grants access. */
export function channelTarget(channel: ChannelConfig): string {
  switch (channel.type) {
    case "telegram":
      return `${redactUrl(channel.apiBase)} chat ${channel.chatId}`;
    default:
      return redactUrl(channel.url);
  }
}

/**
 * A URL with its query values and any long path segment (webhook keys live there, e.g.
 * `/bot/v2/hook/<key>`) replaced by `***`; user and password dropped.
 */
export function redactUrl(text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return REDACTED;
  }
  const path = u.pathname.split("/").map((seg) => isSecretLike(seg) ? REDACTED : seg).join("/");
  const query = [...u.searchParams.keys()].map((k) => `${k}=${REDACTED}`).join("&");
  return `${u.protocol}//${u.host}${path === "/" ? "" : path}${query ? `?${query}` : ""}`;
}

/** Path segments that look like keys: long, or mixing digits and letters beyond a word. */
function isSecretLike(segment: string): boolean {
  if (segment.length >= 16) return true;
  return segment.length >= 8 && /\d/.test(segment) && /[A-Za-z]/.test(segment);
}

/** The strings that must never be shown, for `scrub`. */
export function secretsOf(channels: ChannelConfig[], pingUrl: string | null): string[] {
  const secrets: string[] = [];
  const fromUrl = (text: string) => {
    secrets.push(text);
    try {
      const u = new URL(text);
      for (const v of u.searchParams.values()) if (v.length >= 4) secrets.push(v);
      for (const seg of u.pathname.split("/")) if (isSecretLike(seg)) secrets.push(seg);
      if (u.password) secrets.push(u.password);
    } catch {
      // Not a URL: the whole text is already listed.
    }
  };
  for (const c of channels) {
    if (c.type === "telegram") {
      secrets.push(c.token);
      // The token is in the request path, and fetch errors quote the URL.
      secrets.push(`bot${c.token}`);
    } else {
      fromUrl(c.url);
      if ("secret" in c && c.secret) secrets.push(c.secret);
    }
  }
  if (pingUrl) fromUrl(pingUrl);
  // Longest first, so a URL is replaced whole before the key inside it.
  return [...new Set(secrets.filter((s) => s.length >= 4))].sort((a, b) => b.length - a.length);
}

/**
 * Removes every secret from a text (an error message, a receiver's answer), and the user and
 * password of any URL in it (a proxy's credentials in HTTPS_PROXY end up in fetch errors).
 */
export function scrub(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) {
    if (out.includes(s)) out = out.split(s).join(REDACTED);
    // fetch errors may quote the URL percent-encoded.
    const encoded = encodeURIComponent(s);
    if (encoded !== s && out.includes(encoded)) out = out.split(encoded).join(REDACTED);
  }
  return out.replace(/(\/\/)[^/@\s]+@/g, `$1${REDACTED}@`);
}
