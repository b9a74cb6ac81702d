/**
 * Where a compose project takes a service's image from, and the one edit that makes it name
 * another image. Pure: file texts in, a plan out (the same desired state → plan → actions
 * shape as install). The plan either changes exactly one value in one file (the `image:` in a
 * compose file, or the variable's line in `.env`) or refuses with the file and line an
 * operator must edit by hand.
 */

import { type ImageRef, parseImageRef, repositoryOf } from "../image_ref.ts";
import { findEnvAssignment } from "./dotenv.ts";
import type { ComposeProject } from "./project.ts";
import { findImageInFile, type Span } from "./yaml_image.ts";

/** The texts of the project's files; null for a file that does not exist. */
export type FileTexts = ReadonlyMap<string, string | null>;

/** A place an operator can open: the file, and the line when known. */
export interface Place {
  file: string;
  line: number | null;
}

export interface ImageSource {
  /** The image compose would use now (after interpolation). */
  image: string;
  /** Where `image:` is written in the compose file. */
  composeAt: Place;
  /** The file and value to rewrite: the compose file's `image:` or the `.env` line. */
  edit: { file: string; span: Span; value: string };
  /** For `${VAR}`: the variable and what surrounds it in `image:`. */
  variable: { name: string; prefix: string; suffix: string } | null;
}

export type Resolution =
  | { ok: true; source: ImageSource }
  | { ok: false; at: Place; reason: string };

export interface FileChange {
  file: string;
  line: number;
  from: string;
  to: string;
  before: string;
  after: string;
}

export type PinPlan =
  | { kind: "agrees"; source: ImageSource }
  | { kind: "change"; source: ImageSource; change: FileChange }
  | { kind: "refused"; at: Place; reason: string };

/** `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `$VAR`: one variable, with text around it. */
const VARIABLE_RE =
  /^([^$]*)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^$}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))([^$]*)$/;

/** Where the project takes the service's image from. Pure. */
export function resolveImageSource(project: ComposeProject, texts: FileTexts): Resolution {
  const refused = (file: string, line: number | null, reason: string): Resolution => ({
    ok: false,
    at: { file, line },
    reason,
  });
  const hits: { file: string; value: string; span: Span }[] = [];
  let inherited: { file: string; line: number; how: string } | null = null;
  for (const file of project.configFiles) {
    const text = texts.get(file);
    if (text === undefined || text === null) {
      return refused(file, null, "the compose file is missing");
    }
    const found = findImageInFile(text, project.service);
    if (found.kind === "refused") return refused(file, found.line, found.reason);
    if (found.kind === "value") hits.push({ file, value: found.value, span: found.span });
    else if (found.inherits) inherited = { file, ...found.inherits };
  }
  if (hits.length > 1) {
    const list = hits.map((h) => `${h.file} line ${h.span.line}`).join(" and ");
    return refused(hits[0].file, hits[0].span.line, `the image is set in several files: ${list}`);
  }
  if (hits.length === 0) {
    if (inherited) {
      return refused(
        inherited.file,
        inherited.line,
        `service '${project.service}' takes its image through ${inherited.how}`,
      );
    }
    return refused(project.configFiles[0], null, `service '${project.service}' has no image:`);
  }
  const hit = hits[0];
  const composeAt = { file: hit.file, line: hit.span.line };
  if (!hit.value.includes("$")) {
    return {
      ok: true,
      source: { image: hit.value, composeAt, edit: hit, variable: null },
    };
  }
  const m = VARIABLE_RE.exec(hit.value);
  if (!m) {
    return refused(
      hit.file,
      hit.span.line,
      "the image holds an interpolation other than one ${VAR} or ${VAR:-default}",
    );
  }
  const [, prefix, braced, op, fallback, bare, suffix] = m;
  const name = braced ?? bare;
  const sets: { file: string; value: string; span: Span }[] = [];
  for (const envFile of project.envFiles) {
    const text = texts.get(envFile);
    if (text === undefined || text === null) continue;
    const found = findEnvAssignment(text, name);
    if (found.kind === "refused") return refused(envFile, found.line, found.reason);
    if (found.kind === "value") sets.push({ file: envFile, value: found.value, span: found.span });
  }
  if (sets.length > 1) {
    const list = sets.map((s) => `${s.file} line ${s.span.line}`).join(" and ");
    return refused(hit.file, hit.span.line, `${name} is set in several files: ${list}`);
  }
  if (sets.length === 0) {
    return refused(
      hit.file,
      hit.span.line,
      `${name} is not set in ${project.envFiles.join(", ")}: it comes from the environment of ` +
        `whoever runs docker compose${op ? " (or the default written here)" : ""}`,
    );
  }
  const set = sets[0];
  const useFallback = op === ":-" ? set.value === "" : false;
  const image = `${prefix}${useFallback ? fallback ?? "" : set.value}${suffix}`;
  return {
    ok: true,
    source: { image, composeAt, edit: set, variable: { name, prefix, suffix } },
  };
}

/**
 * The edit that makes the project name `target` (a reference as `formatImageRef` writes it).
 * Keeps the operator's way of writing the repository (`docker.io/library/app` stays so). Pure.
 */
export function planPin(project: ComposeProject, texts: FileTexts, target: string): PinPlan {
  const resolution = resolveImageSource(project, texts);
  if (!resolution.ok) return { kind: "refused", at: resolution.at, reason: resolution.reason };
  const { source } = resolution;
  if (sameImage(source.image, target)) return { kind: "agrees", source };
  const wanted = inStyleOf(source.image, target);
  let value = wanted;
  if (source.variable) {
    const { name, prefix, suffix } = source.variable;
    if (
      !wanted.startsWith(prefix) || !wanted.endsWith(suffix) ||
      wanted.length < prefix.length + suffix.length
    ) {
      return {
        kind: "refused",
        at: source.composeAt,
        reason: `${target} cannot be written through \${${name}} here ('${prefix}…${suffix}')`,
      };
    }
    value = wanted.slice(prefix.length, wanted.length - suffix.length);
  }
  // Image references are [A-Za-z0-9._:/@-]; anything else could break the quoting around it.
  if (!/^[A-Za-z0-9._:/@[\]-]+$/.test(value)) {
    return { kind: "refused", at: source.composeAt, reason: `cannot write '${value}' safely` };
  }
  const before = texts.get(source.edit.file)!;
  const after = before.slice(0, source.edit.span.start) + value +
    before.slice(source.edit.span.end);
  return {
    kind: "change",
    source,
    change: {
      file: source.edit.file,
      line: source.edit.span.line,
      from: source.edit.value,
      to: value,
      before,
      after,
    },
  };
}

/**
 * Checks a planned change by reading the result back: the project must now resolve to `target`
 * from the same place. A safety net over the splice; returns the reason when it does not.
 */
export function checkChange(
  project: ComposeProject,
  texts: FileTexts,
  change: FileChange,
  target: string,
): string | null {
  const next = new Map(texts);
  next.set(change.file, change.after);
  const again = resolveImageSource(project, next);
  if (!again.ok) return `the edited file no longer reads: ${again.reason}`;
  if (!sameImage(again.source.image, target)) {
    return `the edited file names ${again.source.image}, not ${target}`;
  }
  return null;
}

/** Two references name the same image (`app:1` and `docker.io/library/app:1`). */
export function sameImage(a: string, b: string): boolean {
  const ra = tryParse(a);
  const rb = tryParse(b);
  if (!ra || !rb) return a === b;
  return repositoryOf(ra) === repositoryOf(rb) && (ra.tag ?? (ra.digest ? undefined : "latest")) ===
      (rb.tag ?? (rb.digest ? undefined : "latest")) &&
    ra.digest === rb.digest;
}

/** `target`, with the repository written as `current` writes it when both are the same repository. */
function inStyleOf(current: string, target: string): string {
  const rc = tryParse(current);
  const rt = tryParse(target);
  if (!rc || !rt || repositoryOf(rc) !== repositoryOf(rt)) return target;
  const written = repositoryText(current, rc);
  return `${written}${rt.tag ? `:${rt.tag}` : ""}${rt.digest ? `@${rt.digest}` : ""}`;
}

function repositoryText(text: string, ref: ImageRef): string {
  let rest = text;
  if (ref.digest) rest = rest.slice(0, rest.indexOf("@"));
  if (ref.tag) rest = rest.slice(0, rest.lastIndexOf(":"));
  return rest;
}

function tryParse(text: string): ImageRef | null {
  try {
    return parseImageRef(text);
  } catch {
    return null;
  }
}
