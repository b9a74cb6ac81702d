/**
 * The one step untrusted text passes through before it reaches a terminal, a log line or a
 * notification.
 *
 * Untrusted means: anything read from the bot's data folder (triggers, the status file, the
 * history), anything a container prints, anything a registry, a credential helper or another
 * remote answers. Such text can hold terminal escapes (`ESC ]0;title BEL`, `ESC [2J`, the
 * one-byte C1 forms U+009B CSI and U+009D OSC), bidi overrides that make a line read backwards
 * (U+202E), invisible characters that hide or fake content, line separators that start a fake
 * log line, and megabytes of it.
 *
 * - `printable(value, max)` for text a person reads (terminal, log message, notification body).
 * - `printableJson(value, space)` for JSON a program reads (`--json`, log field values): valid
 *   JSON that decodes to the same value, with every such character written as `\uXXXX`.
 */

/**
 * Characters a terminal, a log viewer or a reader could take for something other than text:
 * C0 and C1 controls and DEL (Cc), format characters (Cf: bidi embeddings, overrides and
 * isolates U+202A–U+202E and U+2066–U+2069, marks U+200E/U+200F/U+061C, zero-width characters,
 * the BOM, soft hyphen, tag characters), line and paragraph separators (Zl, Zp), lone
 * surrogates (Cs), and a few letters that render as nothing (Hangul fillers, the combining
 * grapheme joiner, the braille blank).
 */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\u034f\u115f\u1160\u2800\u3164\uffa0]/gu;

const SHORT_ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** `\n`, `\x1b`, `\u202e`, `\u{e0041}`: the escape a reader recognizes, never the character. */
function escapeChar(char: string): string {
  const short = SHORT_ESCAPES[char];
  if (short) return short;
  const code = char.codePointAt(0)!;
  if (code < 0x100) return `\\x${code.toString(16).padStart(2, "0")}`;
  if (code < 0x10000) return `\\u${code.toString(16).padStart(4, "0")}`;
  return `\\u{${code.toString(16)}}`;
}

/** The value as text: strings as they are, anything else as JSON (never `[object Object]`). */
function textOf(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === undefined) return "undefined";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    // A BigInt or a cycle: not from a parsed file, but never let rendering throw.
    try {
      return String(value);
    } catch {
      return "?";
    }
  }
}

/**
 * Untrusted text made safe to show a person: every unprintable character (see above) is
 * replaced by its escape (`\x1b`, `\x9b`, `\u202e`, `\n`), and the text is cut to `max`
 * characters (code points, so a pair is never split) with `…` appended when it was longer.
 * Backslashes and quotes pass unchanged: they are harmless on a terminal, and log lines that
 * hold JSON-quoted values stay readable. Non-string values (an array where a string was
 * expected) are rendered as JSON first, then treated the same. Never throws.
 */
export function printable(value: unknown, max = 80): string {
  const text = textOf(value);
  let cut = text;
  let truncated = false;
  if (text.length > max) {
    const points = Array.from(text);
    if (points.length > max) {
      cut = points.slice(0, max).join("");
      truncated = true;
    }
  }
  const escaped = cut.replace(UNPRINTABLE, escapeChar);
  return truncated ? `${escaped}…` : escaped;
}

/**
 * `JSON.stringify(value, null, space)` that is also safe on a terminal: characters JSON allows
 * raw inside strings (C1 controls, DEL, bidi overrides, invisible format characters, U+2028)
 * are written as `\uXXXX` escapes, so a program that parses the output gets the same value
 * and a person who reads it sees no escape take effect. Returns "null" for undefined.
 */
export function printableJson(value: unknown, space?: number): string {
  const json = JSON.stringify(value, null, space) ?? "null";
  // JSON.stringify escapes C0 controls inside strings, so a raw one is indentation and stays.
  // Every other match is inside a string literal, where a \u escape means the same character.
  return json.replace(UNPRINTABLE, (char) => {
    if (char.charCodeAt(0) < 0x20) return char;
    let out = "";
    for (let i = 0; i < char.length; i++) {
      out += `\\u${char.charCodeAt(i).toString(16).padStart(4, "0")}`;
    }
    return out;
  });
}

/**
 * A copy of a parsed record (a report, a status file) with every string in it, at any depth,
 * passed through `printable(…, max)`; other values are kept. For data that is rendered both as
 * text and as JSON, so both views carry the same safe text. Never throws.
 */
export function printableFields<T>(value: T, max = 300): T {
  return deepMap(value, max, 0) as T;
}

function deepMap(value: unknown, max: number, depth: number): unknown {
  if (typeof value === "string") return printable(value, max);
  if (value === null || typeof value !== "object") return value;
  // Parsed JSON of hostile depth is rendered as text instead of recursed into.
  if (depth > 20) return printable(value, max);
  if (Array.isArray(value)) return value.map((v) => deepMap(v, max, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[printable(k, 80)] = deepMap(v, max, depth + 1);
  return out;
}
