/**
 * Docker image references, parsed with the full grammar of distribution/reference:
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [domain "/"] path-component ["/" path-component]*
 *   domain     := host [":" port]   (host: DNS name, IPv4, or [IPv6])
 *   tag        := [\w][\w.-]{0,127}
 *   digest     := algorithm ":" hex{32,}
 *
 * The first component is a registry host only when it contains "." or ":", is
 * "localhost", or has an upper-case letter, exactly as Docker decides.
 */

import { RejectedError } from "./errors.ts";
import { printable } from "./printable.ts";

export interface ImageRef {
  /** Registry host with optional port, e.g. `registry.example.com:5000`; `docker.io` when none was written. */
  domain: string;
  /** Repository path inside the registry, e.g. `org/app` (`library/app` on Docker Hub). */
  path: string;
  /** Tag, when one was written. */
  tag?: string;
  /** Digest, when one was written, e.g. `sha256:…`. */
  digest?: string;
}

const ALNUM = "[a-z0-9]+";
const SEPARATOR = "(?:[._]|__|[-]+)";
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
const IPV6 = "\\[(?:[a-fA-F0-9:]+)\\]";
const HOST = `(?:${DOMAIN_NAME}|${IPV6})`;
const DOMAIN = `${HOST}(?::[0-9]+)?`;
const TAG = "[\\w][\\w.-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";

const PATH_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const DIGEST_RE = new RegExp(`^${DIGEST}$`);
const NAME_TOTAL_LENGTH_MAX = 255;
const DEFAULT_DOMAIN = "docker.io";

/**
 * Parses an image reference. Throws RejectedError naming the reason when the text is not
 * a valid reference (whitespace, control characters, upper case in the path, bad tag…).
 */
export function parseImageRef(text: string): ImageRef {
  const reject = (why: string) =>
    new RejectedError(`invalid image reference: ${why}`, {
      object: printable(text),
      hint: "write a reference such as registry.example.com/org/app:1.2.3",
    });
  if (text.length === 0) throw reject("it is empty");
  if (text.length > 512) throw reject("it is longer than 512 characters");
  // deno-lint-ignore no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(text)) throw reject("it contains whitespace or control characters");

  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw reject("the digest is not algorithm:hex");
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw reject("the tag may only hold letters, digits, '_', '.' and '-'");
  }
  if (rest.length === 0) throw reject("the repository name is missing");
  // Docker's own rule: a bare 64-character hex name is an image ID, never a repository.
  if (/^[a-f0-9]{64}$/.test(rest)) {
    throw reject("it is a 64-character hex image ID, not a repository name");
  }
  if (rest.length > NAME_TOTAL_LENGTH_MAX) throw reject("the repository name is too long");

  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (
      first.includes(".") || first.includes(":") || first === "localhost" ||
      first !== first.toLowerCase()
    ) {
      domain = first;
      path = rest.slice(slash + 1);
      if (!DOMAIN_RE.test(domain)) throw reject("the registry host is not a valid host[:port]");
    }
  }
  if (!PATH_RE.test(path)) {
    throw reject("the repository path must be lower-case letters, digits and separators");
  }
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = `library/${path}`;
  return { domain, path, tag, digest };
}

/** The repository without tag or digest, fully qualified: `docker.io/library/app`. */
export function repositoryOf(ref: ImageRef): string {
  return `${ref.domain}/${ref.path}`;
}

/** The repository the way Docker prints it: `app` for Docker Hub library images. */
export function familiarRepository(ref: ImageRef): string {
  if (ref.domain === DEFAULT_DOMAIN) {
    return ref.path.startsWith("library/") ? ref.path.slice("library/".length) : ref.path;
  }
  return `${ref.domain}/${ref.path}`;
}

/** The reference to pull or run: tag defaults to `latest` when neither tag nor digest was given. */
export function formatImageRef(ref: ImageRef): string {
  let out = familiarRepository(ref);
  if (ref.tag) out += `:${ref.tag}`;
  if (ref.digest) out += `@${ref.digest}`;
  if (!ref.tag && !ref.digest) out += ":latest";
  return out;
}

/**
 * Whether the reference's repository is in the allow list. Entries are compared as fully
 * qualified repositories, so `app` and `docker.io/library/app` are the same entry.
 */
export function isAllowed(ref: ImageRef, allowed: readonly string[]): boolean {
  const repo = repositoryOf(ref);
  return allowed.some((entry) => {
    try {
      return repositoryOf(parseImageRef(entry)) === repo;
    } catch {
      return false;
    }
  });
}

/** Parses and checks the allow list in one step; throws RejectedError with the reason. */
export function checkImageRef(text: string, allowed: readonly string[]): ImageRef {
  const ref = parseImageRef(text);
  if (!isAllowed(ref, allowed)) {
    throw new RejectedError("repository is not in allowedImages", {
      object: repositoryOf(ref),
      hint: `allowed: ${allowed.length ? allowed.join(", ") : "(none)"}`,
    });
  }
  return ref;
}

/** Kept for the callers that import it from here; the one implementation is lib/printable.ts. */
export { printable };
