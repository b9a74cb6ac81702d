/**
 * The `.env` file compose reads for `${VAR}`: finds the line that sets a variable and the
 * exact place of its value, so that value alone can be rewritten (quotes, `export`, spacing,
 * a trailing comment and the line end are kept).
 */

import type { Span } from "./yaml_image.ts";

export type EnvAssignment =
  | { kind: "absent" }
  | { kind: "value"; value: string; span: Span }
  | { kind: "refused"; line: number; reason: string };

const LINE_RE = /^([ \t]*(?:export[ \t]+)?)([A-Za-z_][A-Za-z0-9_.-]*)([ \t]*=[ \t]*)(.*)$/;

/** Where `name` is set in an env file's text. Pure; never throws. */
export function findEnvAssignment(text: string, name: string): EnvAssignment {
  const found: { line: number; result: EnvAssignment }[] = [];
  let offset = 0;
  let lineNo = 0;
  for (const rawLine of text.split("\n")) {
    lineNo++;
    const lineStart = offset;
    offset += rawLine.length + 1;
    const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    const bom = lineNo === 1 && line.startsWith("\uFEFF") ? 1 : 0;
    const m = LINE_RE.exec(line.slice(bom));
    if (!m || m[2] !== name) continue;
    const valueStart = lineStart + bom + m[1].length + m[2].length + m[3].length;
    found.push({ line: lineNo, result: parseValue(m[4], valueStart, lineNo) });
  }
  if (found.length === 0) return { kind: "absent" };
  if (found.length > 1) {
    return {
      kind: "refused",
      line: found[1].line,
      reason: `${name} is set more than once in this file`,
    };
  }
  return found[0].result;
}

function parseValue(rest: string, at: number, line: number): EnvAssignment {
  const refuse = (reason: string): EnvAssignment => ({ kind: "refused", line, reason });
  const quote = rest[0];
  if (quote === '"' || quote === "'") {
    const close = rest.indexOf(quote, 1);
    if (close < 0) return refuse("the value's quote is not closed on this line");
    const inner = rest.slice(1, close);
    if (/[\\$`]/.test(inner)) return refuse("the value holds '\\', '$' or '`'");
    if (!/^\s*(#.*)?$/.test(rest.slice(close + 1))) return refuse("text follows the quoted value");
    return {
      kind: "value",
      value: inner,
      span: { start: at + 1, end: at + 1 + inner.length, line },
    };
  }
  // Unquoted: the value ends at whitespace (then only a ' #' comment may follow).
  const m = /^([^\s#'"]*)(\s*(#.*)?)$/.exec(rest);
  if (!m) return refuse("the value is not one word, nor quoted");
  if (/[\\$`]/.test(m[1])) return refuse("the value holds '\\', '$' or '`'");
  if (m[1] === "" && m[2].trim() !== "") {
    return refuse("the value is empty and followed by a comment");
  }
  return { kind: "value", value: m[1], span: { start: at, end: at + m[1].length, line } };
}
