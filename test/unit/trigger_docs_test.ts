/**
 * docs/trigger-protocol.md's table of rejection reasons is what the program prints: each input
 * the table describes is rejected with the reason the table gives (up to the placeholders).
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { describeError } from "../../lib/errors.ts";
import { checkTrigger, type ClaimedContent } from "../../lib/watch/trigger.ts";

const DOC = fileURLToPath(new URL("../../docs/trigger-protocol.md", import.meta.url));
const ALLOWED = ["registry.example.com/org/bot"];

/** The documented reasons, by the first words of their row's input column. */
async function documentedReasons(): Promise<Map<string, string>> {
  const text = await Deno.readTextFile(DOC);
  const rows = new Map<string, string>();
  for (const line of text.split("\n")) {
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    if (cells.length < 4 || !cells[2].startsWith("`")) continue;
    rows.set(cells[1], cells[2]);
  }
  return rows;
}

function reasonOf(content: ClaimedContent): string {
  try {
    checkTrigger(content, ALLOWED);
  } catch (err) {
    return describeError(err).message;
  }
  throw new Error("the trigger was accepted");
}

const file = (text: string): ClaimedContent => ({
  kind: "file",
  bytes: new TextEncoder().encode(text),
});

/** Each row (by the start of its input text) and an input that fits it. */
const CASES: [string, ClaimedContent][] = [
  ["a symlink", { kind: "symlink" } as ClaimedContent],
  [
    "a regular file that cannot be opened",
    { kind: "other", bytes: null, unreadable: "open '/proc/self/fd/21': EAGAIN" },
  ],
  ["more than 4096 bytes", file("x".repeat(5000))],
  ["not valid UTF-8", { kind: "file", bytes: new Uint8Array([0xff, 0xfe, 0x41]) }],
  ["empty or only whitespace", file("  \n ")],
  [
    "two or more non-empty lines",
    file("registry.example.com/org/bot:1\nregistry.example.com/org/bot:2"),
  ],
  ["control characters", file("registry.example.com/org/bot:1\u0001")],
  ["spaces, shell metacharacters", file("registry.example.com/org/bot:1;rm -rf /")],
  ["starts with `{` but is not valid JSON", file("{image: x}")],
  ["a JSON array or string", file('["registry.example.com/org/bot:1"]')],
  ["a JSON key other than", file('{"image": "registry.example.com/org/bot:1", "cmd": "x"}')],
  ["a JSON value of the wrong type", file('{"image": 42}')],
  ["a repository outside `allowedImages`", file("evil.example.com/org/bot:1")],
];

Deno.test("every rejection reason in docs/trigger-protocol.md is the one the program prints", async () => {
  const rows = await documentedReasons();
  for (const [start, content] of CASES) {
    const row = [...rows.entries()].find(([input]) => input.startsWith(start));
    assert.ok(row, `the table has a row starting '${start}'`);
    // The first code span of the reason cell, up to its first placeholder ('…' or '<').
    const documented = row[1].match(/`([^`]+)`/)![1].split(/…|<|'cmd'|2 lines|symlink/)[0];
    const printed = reasonOf(content);
    assert.ok(
      printed.startsWith(documented),
      `${start}: documented '${documented}…', printed '${printed}'`,
    );
  }
  assert.equal(CASES.length, rows.size, "every row of the table has a case here");
});
