import assert from "node:assert/strict";
import { printable, printableFields, printableJson } from "../../lib/printable.ts";
import { formatRecord, type LogRecord } from "../../lib/log.ts";

/** What must never come out raw: each one changes what a terminal shows or a reader sees. */
const HOSTILE = [
  "\u001b]0;owned\u0007", // OSC: sets the window title
  "\u001b[2J", // CSI: clears the screen
  "\u009b2J", // the one-byte C1 CSI
  "\u009d0;owned\u009c", // the one-byte C1 OSC and ST
  "\u0085", // C1 next line
  "\u007f", // DEL
  "\r", // returns to the start of the line to overwrite it
  "\n",
  "\u202e", // right-to-left override
  "\u202a\u202b\u202c\u202d", // embeddings and pop
  "\u2066\u2067\u2068\u2069", // isolates
  "\u200b\u200e\u200f\u061c\ufeff\u00ad\u2060", // zero-width, marks, BOM, soft hyphen, joiner
  "\u2028\u2029", // line and paragraph separators
  "\u{e0041}", // a tag character
  "\ud800", // a lone surrogate
  "\u3164\u115f", // letters that render as nothing
];

/** True when `text` still holds a character from the hostile list. */
function holdsRaw(text: string): boolean {
  // deno-lint-ignore no-control-regex
  return /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\u3164\u115f\u{e0000}-\u{e007f}]|\p{Cs}/u
    .test(text);
}

Deno.test("printable escapes C0 and C1 controls, escape sequences, bidi and invisible characters", () => {
  for (const text of HOSTILE) {
    const out = printable(`a${text}b`, 1000);
    assert.ok(!holdsRaw(out), `${JSON.stringify(text)} came out as ${JSON.stringify(out)}`);
    assert.ok(out.startsWith("a") && out.endsWith("b"));
  }
  assert.equal(printable("\u001b[2J"), "\\x1b[2J");
  assert.equal(printable("\u009b"), "\\x9b");
  assert.equal(printable("abc\u202edef"), "abc\\u202edef");
  assert.equal(printable("x\ny"), "x\\ny");
  assert.equal(printable("\u{e0041}"), "\\u{e0041}");
});

Deno.test("printable keeps ordinary text, quotes and other scripts as they are", () => {
  assert.equal(
    printable('registry.example.com/org/app:v2 "quoted" \\ 交易 ✅'),
    'registry.example.com/org/app:v2 "quoted" \\ 交易 ✅',
  );
});

Deno.test("printable caps the length in characters without splitting a pair", () => {
  assert.equal(printable("x".repeat(100), 10), "xxxxxxxxxx…");
  assert.equal(printable("😀".repeat(20), 3), "😀😀😀…");
  assert.equal(printable("short", 10), "short");
  assert.ok(printable("\u001b".repeat(10_000)).length < 80 * 4 + 2);
});

Deno.test("printable renders a non-string value as escaped JSON, never raw", () => {
  const value = ["\u001b]0;owned\u0007\u001b[2J", { k: "\u009b" }];
  const out = printable(value, 1000);
  assert.ok(!holdsRaw(out), out);
  assert.equal(printable(42), "42");
  assert.equal(printable(null), "null");
  assert.equal(printable(undefined), "undefined");
  assert.equal(printable(10n), "10");
});

Deno.test("printableJson stays valid JSON, decodes to the same value and holds nothing raw", () => {
  const value = { hostile: HOSTILE, nested: [{ "\u202ekey": "\u009d\u2028" }] };
  const out = printableJson(value, 2);
  assert.ok(!holdsRaw(out.replaceAll("\n", "")), out);
  assert.deepEqual(JSON.parse(out), value);
});

Deno.test("printableFields makes every string in a record printable and keeps the shape", () => {
  const out = printableFields({ a: "\u001b[2J", b: [1, "\u202e"], c: { d: null, e: true } }, 50);
  assert.deepEqual(out, { a: "\\x1b[2J", b: [1, "\\u202e"], c: { d: null, e: true } });
});

function record(message: string, properties: Record<string, unknown>): LogRecord {
  return {
    category: ["hyperbot-ops", "watch"],
    level: "info",
    message: [message],
    properties,
    timestamp: Date.parse("2026-01-05T10:00:00Z"),
  };
}

Deno.test("a log line quotes values with spaces, quotes, '=' or controls, and stays one line", () => {
  const line = formatRecord(
    record("rejected\ntrigger \u001b[2J", {
      plain: "app:v2",
      spaced: "a b",
      quoted: 'say "hi"',
      single: "it's",
      eq: "x=1",
      c1: "a\u009bb",
      bidi: "a\u202eb",
      nl: "x\nERROR forged line",
      sep: "x\u2028y",
      list: ["\u001b]0;t\u0007"],
    }),
    false,
  );
  assert.ok(!line.includes("\n"));
  assert.ok(!holdsRaw(line), line);
  assert.match(line, / plain=app:v2 /);
  assert.match(line, / spaced="a b" /);
  assert.match(line, / quoted="say \\"hi\\"" /);
  assert.match(line, / single="it's" /);
  assert.match(line, / eq="x=1" /);
  assert.match(line, / c1="a\\u009bb" /);
  assert.match(line, / bidi="a\\u202eb" /);
  assert.match(line, / nl="x\\nERROR forged line" /);
  assert.match(line, /^INFO {2}watch: rejected\\ntrigger \\x1b\[2J /);
  // Each quoted value decodes back to the text that was logged.
  assert.equal(JSON.parse(line.match(/ c1=("[^"]*")/)![1]), "a\u009bb");
});

Deno.test("a log line caps each value and the message", () => {
  const line = formatRecord(record("m".repeat(10_000), { v: "v".repeat(10_000) }), false);
  assert.ok(line.length < 4_200, `${line.length}`);
});
