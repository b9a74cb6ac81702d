/**
 * Finds a service's `image:` value in the text of one compose file, with its exact place in
 * that text, so it can be rewritten without touching any other byte. The `yaml` package parses
 * (and keeps source ranges); the edit itself is a splice of the original text.
 *
 * Only a value that can be rewritten safely is returned: a one-line plain, single- or
 * double-quoted scalar that is the service's own (not reached through an alias, a merge key or
 * `extends`), without an anchor (something else could use it), without escapes. Anything else
 * is a refusal with the line to edit by hand.
 */

import { isAlias, isMap, isScalar, type Node, parseAllDocuments, Scalar } from "yaml";

/** A place in a text: offsets into the JS string, and the 1-based line for people. */
export interface Span {
  start: number;
  end: number;
  line: number;
}

export type ImageInFile =
  /** The file does not set the service's image (an override file for other keys, say). */
  | { kind: "absent"; inherits: null | { line: number; how: "extends" | "merge key" } }
  | { kind: "value"; value: string; span: Span; style: "plain" | "single" | "double" }
  | { kind: "refused"; line: number | null; reason: string };

/** Where the service's `image:` is in one compose file. Pure; never throws. */
export function findImageInFile(text: string, service: string): ImageInFile {
  const refuse = (at: number | null, reason: string): ImageInFile => ({
    kind: "refused",
    line: at === null ? null : lineAt(text, at),
    reason,
  });
  let docs;
  try {
    docs = parseAllDocuments(text, { prettyErrors: false });
  } catch (err) {
    return refuse(null, `it cannot be parsed as YAML: ${(err as Error).message}`);
  }
  if (!Array.isArray(docs)) return { kind: "absent", inherits: null }; // empty stream
  if (docs.length > 1) {
    return refuse(docs[1].range[0], "it holds several YAML documents (---); compose reads one");
  }
  if (docs.length === 0) return { kind: "absent", inherits: null };
  const doc = docs[0];
  if (doc.errors.length) {
    const e = doc.errors[0];
    return refuse(e.pos[0], `it cannot be parsed as YAML: ${e.message.split("\n")[0]}`);
  }
  const root = doc.contents;
  if (root === null) return { kind: "absent", inherits: null };
  if (!isMap(root)) return refuse(startOf(root), "its top level is not a mapping");

  const services = root.get("services", true) as Node | undefined;
  if (services === undefined || services === null) return { kind: "absent", inherits: null };
  if (isAlias(services)) return refuse(startOf(services), "'services' is an alias (*name)");
  if (isScalar(services) && services.value === null) return { kind: "absent", inherits: null };
  if (!isMap(services)) return refuse(startOf(services), "'services' is not a mapping");

  const svc = services.get(service, true) as Node | undefined;
  if (svc === undefined || svc === null) return { kind: "absent", inherits: null };
  if (isAlias(svc)) {
    return refuse(startOf(svc), `service '${service}' is an alias (*name) of another definition`);
  }
  if (isScalar(svc) && svc.value === null) return { kind: "absent", inherits: null };
  if (!isMap(svc)) return refuse(startOf(svc), `service '${service}' is not a mapping`);

  let image: Node | undefined;
  let inherits: { line: number; how: "extends" | "merge key" } | null = null;
  for (const pair of svc.items) {
    const key = pair.key as Node | null;
    if (isAlias(key)) return refuse(startOf(key), `a key of service '${service}' is an alias`);
    const name = isScalar(key) ? key.value : undefined;
    if (name === "image") image = (pair.value ?? undefined) as Node | undefined;
    else if (name === "extends" && key) {
      inherits = { line: lineAt(text, startOf(key)), how: "extends" };
    } else if (name === "<<" && key) {
      inherits = { line: lineAt(text, startOf(key)), how: "merge key" };
    }
  }
  if (image === undefined) return { kind: "absent", inherits };

  if (isAlias(image)) {
    return refuse(startOf(image), "the image is an alias (*name) of a value set elsewhere");
  }
  if (!isScalar(image)) {
    return refuse(startOf(image), "the image is not a single value");
  }
  if (image.anchor) {
    return refuse(
      startOf(image),
      `the image carries an anchor (&${image.anchor}) that other places may use`,
    );
  }
  if (image.tag) return refuse(startOf(image), `the image has an explicit tag (${image.tag})`);
  const [start, end] = image.range ?? [0, 0];
  const source = text.slice(start, end);
  if (/[\r\n]/.test(source)) return refuse(start, "the image value spans several lines");
  if (typeof image.value !== "string") {
    return refuse(start, "the image is not a string");
  }
  const span = (s: number, e: number): Span => ({ start: s, end: e, line: lineAt(text, start) });
  switch (image.type) {
    case Scalar.PLAIN:
      if (source !== image.value) {
        return refuse(start, "the image value is not written as it reads");
      }
      return { kind: "value", value: image.value, span: span(start, end), style: "plain" };
    case Scalar.QUOTE_SINGLE:
    case Scalar.QUOTE_DOUBLE: {
      const inner = source.slice(1, -1);
      if (inner !== image.value) {
        return refuse(start, "the image value holds quotes or escapes");
      }
      return {
        kind: "value",
        value: inner,
        span: span(start + 1, end - 1),
        style: image.type === Scalar.QUOTE_SINGLE ? "single" : "double",
      };
    }
    default:
      return refuse(start, "the image is a block scalar (| or >)");
  }
}

/** 1-based line of an offset (a lone CR does not start a line for us; compose files use LF or CRLF). */
export function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function startOf(node: Node | { range?: [number, number, number] | null } | null): number {
  return (node as { range?: [number, number, number] | null } | null)?.range?.[0] ?? 0;
}
