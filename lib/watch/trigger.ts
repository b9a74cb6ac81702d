/**
 * The trigger the bot writes to `<dataDir>/.update_trigger`, read as untrusted input.
 *
 * The container that writes it is less trusted than the host, so everything here refuses
 * rather than guesses: only a regular file, at most 4 KiB, valid UTF-8, one image reference
 * (plain text on one line, or a small JSON object with known keys), and a repository the
 * host allows. The functions are pure; lib/adapters/trigger_inbox.ts does the file system part.
 */

import { RejectedError } from "../errors.ts";
import { checkImageRef, parseImageRef } from "../image_ref.ts";
import { printable } from "../printable.ts";

/** The most bytes a trigger may hold. Readers read one byte more to tell "too big" apart. */
export const MAX_TRIGGER_BYTES = 4096;

/** What lstat said the trigger path was, before anything opened it. */
export type EntryKind =
  | "file"
  | "symlink"
  | "directory"
  | "fifo"
  | "socket"
  | "block device"
  | "character device"
  | "other";

/** A trigger taken out of the data folder: its kind and, for a regular file, its first bytes. */
export interface ClaimedContent {
  kind: EntryKind;
  /** At most MAX_TRIGGER_BYTES + 1 bytes; null unless kind is "file". */
  bytes: Uint8Array | null;
  /** Why the entry could not be read (a lease the container holds on it, …); bytes is null. */
  unreadable?: string;
}

/** A valid request, before the allow list is checked. */
export interface TriggerRequest {
  /** The image reference exactly as written (trimmed). */
  image: string;
  /** The caller's id from a JSON trigger, echoed into the status file. */
  requestId?: string;
  force: boolean;
  format: "plain" | "json";
}

const JSON_KEYS = new Set(["image", "id", "force"]);
const REQUEST_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

function reject(why: string, object?: string): RejectedError {
  return new RejectedError(`rejected trigger: ${why}`, {
    object,
    hint: 'write one image reference, or {"image": "…", "id": "…", "force": false}',
  });
}

/**
 * Parses a claimed trigger into a request. Throws RejectedError with the reason for anything
 * that is not a regular file holding one valid reference (grammar only; see checkTrigger).
 */
export function parseTrigger(content: ClaimedContent): TriggerRequest {
  if (content.unreadable !== undefined) throw reject(`it could not be read: ${content.unreadable}`);
  if (content.kind !== "file") {
    throw reject(`it is a ${content.kind}, not a regular file (it was not followed or read)`);
  }
  const bytes = content.bytes ?? new Uint8Array();
  if (bytes.length > MAX_TRIGGER_BYTES) {
    throw reject(`it is larger than ${MAX_TRIGGER_BYTES} bytes`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw reject("it is not valid UTF-8 text");
  }
  const trimmed = text.trim();
  if (trimmed === "") throw reject("it is empty");
  return trimmed.startsWith("{") ? parseJsonTrigger(trimmed) : parsePlainTrigger(trimmed);
}

function parsePlainTrigger(text: string): TriggerRequest {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "");
  if (lines.length > 1) {
    throw reject(`it holds ${lines.length} lines, expected one image reference`);
  }
  const image = lines[0];
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x08\x0b-\x1f\x7f]/.test(image)) {
    throw reject("it holds control characters", printable(image));
  }
  parseImageRef(image);
  return { image, force: false, format: "plain" };
}

function parseJsonTrigger(text: string): TriggerRequest {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw reject("it starts with '{' but is not valid JSON", printable(text));
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw reject("the JSON must be an object");
  }
  const record = data as Record<string, unknown>;
  const unknown = Object.keys(record).filter((k) => !JSON_KEYS.has(k));
  if (unknown.length > 0) {
    throw reject(`unknown JSON key '${printable(unknown[0], 40)}' (known: image, id, force)`);
  }
  const { image, id, force } = record;
  if (typeof image !== "string") throw reject("'image' must be a string");
  if (id !== undefined && (typeof id !== "string" || !REQUEST_ID_RE.test(id))) {
    throw reject(
      "'id' must be 1 to 64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
      printable(String(id), 40),
    );
  }
  if (force !== undefined && typeof force !== "boolean") {
    throw reject("'force' must be true or false");
  }
  parseImageRef(image);
  return {
    image,
    ...(id !== undefined ? { requestId: id as string } : {}),
    force: force === true,
    format: "json",
  };
}

/**
 * parseTrigger, then the allow list when one is configured. Throws RejectedError naming the
 * reason. With an empty `allowedImages` the allowed repository is that of the image the
 * container runs now, which only the update engine knows: `runUpdate` checks that rule itself
 * (see `allowedRepositories` in lib/update/run.ts) and throws RejectedError before touching anything.
 */
export function checkTrigger(
  content: ClaimedContent,
  allowedImages: readonly string[],
): TriggerRequest {
  const request = parseTrigger(content);
  if (allowedImages.length > 0) checkImageRef(request.image, allowedImages);
  return request;
}

/**
 * The caller's request id of a JSON trigger when it is well-formed, even if the rest is not:
 * a rejection can then still be matched to its request. Returns undefined otherwise.
 */
export function peekRequestId(content: ClaimedContent): string | undefined {
  if (content.kind !== "file" || !content.bytes || content.bytes.length > MAX_TRIGGER_BYTES) {
    return undefined;
  }
  try {
    const data = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(content.bytes));
    const id = data?.id;
    return typeof id === "string" && REQUEST_ID_RE.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}
