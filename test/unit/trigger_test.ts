import assert from "node:assert/strict";
import { readEntry } from "../../lib/adapters/data_dir.ts";
import { join } from "node:path";
import { RejectedError } from "../../lib/errors.ts";
import { CLAIM_DIR, FileTriggerInbox, STAGE_PREFIX } from "../../lib/adapters/trigger_inbox.ts";
import {
  checkTrigger,
  type ClaimedContent,
  MAX_TRIGGER_BYTES,
  parseTrigger,
  peekRequestId,
} from "../../lib/watch/trigger.ts";

const ALLOWED = ["127.0.0.1:5000/hyperbot/app"];

function file(text: string | Uint8Array): ClaimedContent {
  return { kind: "file", bytes: typeof text === "string" ? new TextEncoder().encode(text) : text };
}

function rejects(content: ClaimedContent, pattern: RegExp, allowed: string[] = ALLOWED) {
  assert.throws(() => checkTrigger(content, allowed), (err: unknown) => {
    assert.ok(err instanceof RejectedError, `expected RejectedError, got ${err}`);
    assert.match((err as Error).message, pattern);
    return true;
  });
}

Deno.test("a plain trigger with one reference and a trailing newline is accepted", () => {
  const request = checkTrigger(file("127.0.0.1:5000/hyperbot/app:v2\n"), ALLOWED);
  assert.deepEqual(request, {
    image: "127.0.0.1:5000/hyperbot/app:v2",
    force: false,
    format: "plain",
  });
});

Deno.test("a plain trigger keeps working with CRLF and surrounding blank lines", () => {
  const request = parseTrigger(file("\r\n  127.0.0.1:5000/hyperbot/app:v2  \r\n\r\n"));
  assert.equal(request.image, "127.0.0.1:5000/hyperbot/app:v2");
});

Deno.test("a JSON trigger carries the request id and force", () => {
  const request = checkTrigger(
    file('{"image": "127.0.0.1:5000/hyperbot/app:v2", "id": "req-42", "force": true}'),
    ALLOWED,
  );
  assert.deepEqual(request, {
    image: "127.0.0.1:5000/hyperbot/app:v2",
    requestId: "req-42",
    force: true,
    format: "json",
  });
});

Deno.test("a JSON trigger without id and force is accepted with force false", () => {
  const request = parseTrigger(
    file('{"image":"127.0.0.1:5000/hyperbot/app@sha256:' + "a".repeat(64) + '"}'),
  );
  assert.equal(request.force, false);
  assert.equal(request.requestId, undefined);
});

Deno.test("a symlink, FIFO, directory, socket or device is rejected without being read", () => {
  for (
    const kind of [
      "symlink",
      "fifo",
      "directory",
      "socket",
      "block device",
      "character device",
    ] as const
  ) {
    rejects({ kind, bytes: null }, new RegExp(`it is a ${kind}, not a regular file`));
  }
});

Deno.test("a file larger than 4 KiB is rejected", () => {
  rejects(file(new Uint8Array(MAX_TRIGGER_BYTES + 1).fill(0x61)), /larger than 4096 bytes/);
});

Deno.test("a file of exactly 4 KiB is read as a reference (and fails the grammar, not the size)", () => {
  rejects(file("a".repeat(MAX_TRIGGER_BYTES)), /invalid image reference/);
});

Deno.test("binary junk that is not UTF-8 is rejected", () => {
  rejects(file(new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0xc3])), /not valid UTF-8/);
});

Deno.test("valid UTF-8 with control characters is rejected", () => {
  rejects(
    file("127.0.0.1:5000/hyperbot/app:v2\u0000"),
    /control characters|invalid image reference/,
  );
  rejects(
    file("127.0.0.1:5000/hyperbot/app:v2\u001b[31m"),
    /control characters|invalid image reference/,
  );
});

Deno.test("shell metacharacters are rejected by the reference grammar", () => {
  for (
    const text of [
      "127.0.0.1:5000/hyperbot/app:v2; rm -rf /",
      "127.0.0.1:5000/hyperbot/app:$(reboot)",
      "`id`",
      "127.0.0.1:5000/hyperbot/app:v2|sh",
      "127.0.0.1:5000/hyperbot/app:v2&&true",
      "../../etc/passwd",
      "--help",
    ]
  ) {
    rejects(file(text), /invalid image reference/);
  }
});

Deno.test("two images on two lines are rejected", () => {
  rejects(file("127.0.0.1:5000/hyperbot/app:v1\n127.0.0.1:5000/hyperbot/app:v2\n"), /2 lines/);
  // Blank lines between them are not counted as lines.
  rejects(
    file("127.0.0.1:5000/hyperbot/app:v1\n\n \r\n127.0.0.1:5000/hyperbot/app:v2"),
    /^rejected trigger: it holds 2 lines, expected one image reference$/,
  );
});

Deno.test("every rejection says how to write a trigger", () => {
  for (
    const content of [
      file(""),
      file("a\nb"),
      file("{"),
      file('{"image": 5}'),
      { kind: "fifo", bytes: null } as ClaimedContent,
    ]
  ) {
    assert.throws(() => checkTrigger(content, ALLOWED), (err: unknown) => {
      assert.ok(err instanceof RejectedError);
      assert.equal(
        err.hint,
        'write one image reference, or {"image": "…", "id": "…", "force": false}',
      );
      return true;
    });
  }
});

Deno.test("a repository that is not allowed is rejected", () => {
  rejects(file("127.0.0.1:5000/evil/app:v2"), /not in allowedImages/);
  rejects(file("docker.io/library/busybox:latest"), /not in allowedImages/);
});

Deno.test("with an empty allow list the grammar is checked here and the repository by the engine", () => {
  assert.equal(
    checkTrigger(file("127.0.0.1:5000/evil/app:v2"), []).image,
    "127.0.0.1:5000/evil/app:v2",
  );
});

Deno.test("an empty or blank file is rejected", () => {
  rejects(file(""), /it is empty/);
  rejects(file(" \n\n\t\n"), /it is empty/);
});

Deno.test("bad JSON is rejected", () => {
  rejects(file('{"image": "127.0.0.1:5000/hyperbot/app:v2"'), /not valid JSON/);
  rejects(file('{"image": 5}'), /'image' must be a string/);
  rejects(
    file('{"image": "127.0.0.1:5000/hyperbot/app:v2", "force": "yes"}'),
    /'force' must be true or false/,
  );
  rejects(file('{"image": "127.0.0.1:5000/hyperbot/app:v2", "id": "a b"}'), /'id' must be/);
  rejects(
    file('{"image": "127.0.0.1:5000/hyperbot/app:v2", "id": "' + "x".repeat(65) + '"}'),
    /'id' must be/,
  );
  rejects(file("[1, 2]"), /invalid image reference/);
});

Deno.test("unknown JSON keys are rejected", () => {
  rejects(
    file('{"image": "127.0.0.1:5000/hyperbot/app:v2", "cmd": "sh"}'),
    /unknown JSON key 'cmd'/,
  );
  rejects(
    file('{"image": "127.0.0.1:5000/hyperbot/app:v2", "__proto__": {"force": true}}'),
    /unknown JSON key/,
  );
});

Deno.test("the request id of a rejected JSON trigger can still be echoed", () => {
  assert.equal(peekRequestId(file('{"image": "nope nope", "id": "req-7"}')), "req-7");
  assert.equal(peekRequestId(file('{"id": "bad id"}')), undefined);
  assert.equal(peekRequestId(file("plain")), undefined);
  assert.equal(peekRequestId({ kind: "fifo", bytes: null }), undefined);
  assert.equal(peekRequestId(file('{"id": 5}')), undefined);
  assert.equal(peekRequestId(file("null")), undefined);
  // What the trigger itself would refuse to read is not read for its id either: a file the
  // container holds a lease on, more than 4 KiB, not UTF-8 (even if the JSON would parse).
  assert.equal(peekRequestId({ kind: "file", bytes: null, unreadable: "EAGAIN" }), undefined);
  const sized = (n: number) => {
    const head = '{"id": "req-7", "pad": "';
    return file(head + "x".repeat(n - head.length - 2) + '"}');
  };
  assert.equal(sized(4096).bytes!.length, 4096);
  assert.equal(peekRequestId(sized(4096)), "req-7");
  assert.equal(peekRequestId(sized(4097)), undefined);
  const notUtf8 = new Uint8Array([
    ...new TextEncoder().encode('{"id": "req-7", "x": "'),
    0xff,
    0x22,
    0x7d,
  ]);
  assert.equal(peekRequestId(file(notUtf8)), undefined);
  // Only a regular file's bytes count, whatever else a caller passes.
  assert.equal(
    peekRequestId({ kind: "symlink", bytes: new TextEncoder().encode('{"id": "req-7"}') }),
    undefined,
  );
});

// ---- the file system side: claim and read ----------------------------------------------

async function dirs() {
  const base = await Deno.makeTempDir({ prefix: "hbt-trigger-" });
  const dataDir = join(base, "data");
  const stateDir = join(base, "state");
  await Deno.mkdir(dataDir);
  await Deno.mkdir(stateDir);
  return { base, dataDir, stateDir, trigger: join(dataDir, ".update_trigger") };
}

async function claimDirEntries(stateDir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(join(stateDir, CLAIM_DIR))) names.push(e.name);
  return names;
}

Deno.test("claiming moves the trigger into the claim folder and reads it", async () => {
  const d = await dirs();
  try {
    await Deno.writeTextFile(d.trigger, "127.0.0.1:5000/hyperbot/app:v2\n");
    const inbox = new FileTriggerInbox(d.dataDir, d.stateDir);
    const claim = await inbox.claim();
    assert.ok(claim);
    assert.equal(claim.content.kind, "file");
    assert.equal(
      new TextDecoder().decode(claim.content.bytes!),
      "127.0.0.1:5000/hyperbot/app:v2\n",
    );
    assert.equal(await inbox.hasTrigger(), false);
    assert.deepEqual(await claimDirEntries(d.stateDir), [claim.stamp]);
    assert.equal(await inbox.claim(), null);

    const started = await inbox.markStarted(claim, 1234);
    assert.deepEqual(await claimDirEntries(d.stateDir), [`${claim.stamp}.started-1234`]);
    const pending = await inbox.pending();
    assert.equal(pending.length, 1);
    assert.equal(pending[0].startedAt, 1234);
    assert.equal(pending[0].stamp, claim.stamp);
    await inbox.unmarkStarted(started);
    assert.deepEqual(await claimDirEntries(d.stateDir), [claim.stamp]);
    await inbox.remove(claim);
    assert.deepEqual(await claimDirEntries(d.stateDir), []);
  } finally {
    await Deno.remove(d.base, { recursive: true });
  }
});

Deno.test("a symlink trigger to a host file is removed without touching its target", async () => {
  const d = await dirs();
  try {
    const secret = join(d.base, "host-secret");
    await Deno.writeTextFile(secret, "root:x:0:0\n");
    await Deno.symlink(secret, d.trigger);
    const claim = await new FileTriggerInbox(d.dataDir, d.stateDir).claim();
    assert.deepEqual(claim?.content, { kind: "symlink", bytes: null });
    assert.equal(await Deno.readTextFile(secret), "root:x:0:0\n");
    assert.deepEqual(await claimDirEntries(d.stateDir), []);
    await assert.rejects(Deno.lstat(d.trigger), Deno.errors.NotFound);
  } finally {
    await Deno.remove(d.base, { recursive: true });
  }
});

Deno.test("a FIFO trigger is rejected without blocking on it", async () => {
  const d = await dirs();
  try {
    const mk = await new Deno.Command("mkfifo", { args: [d.trigger] }).output();
    assert.ok(mk.success, "mkfifo must exist for this test");
    const claim = await new FileTriggerInbox(d.dataDir, d.stateDir).claim();
    assert.deepEqual(claim?.content, { kind: "fifo", bytes: null });
    assert.deepEqual(await claimDirEntries(d.stateDir), []);
  } finally {
    await Deno.remove(d.base, { recursive: true });
  }
});

Deno.test("a directory trigger is rejected and removed with its contents", async () => {
  const d = await dirs();
  try {
    const outside = join(d.base, "outside");
    await Deno.writeTextFile(outside, "keep me");
    await Deno.mkdir(d.trigger);
    await Deno.writeTextFile(join(d.trigger, "x"), "x");
    await Deno.symlink(outside, join(d.trigger, "link"));
    const claim = await new FileTriggerInbox(d.dataDir, d.stateDir).claim();
    assert.deepEqual(claim?.content, { kind: "directory", bytes: null });
    assert.equal(await Deno.readTextFile(outside), "keep me");
    assert.deepEqual(await claimDirEntries(d.stateDir), []);
  } finally {
    await Deno.remove(d.base, { recursive: true });
  }
});

Deno.test("a 10 MB trigger is read only up to 4 KiB plus one byte", async () => {
  const d = await dirs();
  try {
    await Deno.writeFile(d.trigger, new Uint8Array(10 * 1024 * 1024).fill(0x61));
    const claim = await new FileTriggerInbox(d.dataDir, d.stateDir).claim();
    assert.equal(claim?.content.bytes?.length, MAX_TRIGGER_BYTES + 1);
    assert.throws(() => parseTrigger(claim!.content), /larger than 4096 bytes/);
  } finally {
    await Deno.remove(d.base, { recursive: true });
  }
});

Deno.test("readEntry refuses a symlink even when asked directly", async () => {
  const d = await dirs();
  try {
    await Deno.symlink("/etc/passwd", d.trigger);
    assert.deepEqual(readEntry(d.trigger, 100), { kind: "symlink", bytes: null });
  } finally {
    await Deno.remove(d.base, { recursive: true });
  }
});

Deno.test("a dataDir on another filesystem is claimed by staging the trigger and copying it", async () => {
  let shm: string;
  try {
    shm = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "hbt-trigger-" });
  } catch {
    throw new Error("this test needs /dev/shm (a filesystem other than the temp folder's)");
  }
  const d = await dirs();
  try {
    const trigger = join(shm, ".update_trigger");
    await Deno.writeTextFile(trigger, "127.0.0.1:5000/hyperbot/app:v2\n");
    const inbox = new FileTriggerInbox(shm, d.stateDir);
    const claim = await inbox.claim();
    assert.equal(
      new TextDecoder().decode(claim!.content.bytes!),
      "127.0.0.1:5000/hyperbot/app:v2\n",
    );
    assert.deepEqual(await claimDirEntries(d.stateDir), [claim!.stamp]);
    const left: string[] = [];
    for await (const e of Deno.readDir(shm)) left.push(e.name);
    assert.deepEqual(left, []);

    // A killed process left a staged trigger behind: the next start finishes the move.
    await inbox.remove(claim!);
    const stamp = "000001700000000-000001-0000abcd";
    await Deno.writeTextFile(join(shm, STAGE_PREFIX + stamp), "127.0.0.1:5000/hyperbot/app:v1\n");
    const pending = await inbox.pending();
    assert.equal(pending.length, 1);
    assert.equal(pending[0].stamp, stamp);
    assert.equal(
      new TextDecoder().decode(pending[0].content.bytes!),
      "127.0.0.1:5000/hyperbot/app:v1\n",
    );
    for await (const e of Deno.readDir(shm)) assert.fail(`left in dataDir: ${e.name}`);

    // The container plants many staged names: only the newest is finished, the rest removed.
    await inbox.remove(pending[0]);
    for (let i = 0; i < 300; i++) {
      const planted = `000001700000000-${String(i).padStart(6, "0")}-0000abcd`;
      await Deno.writeTextFile(
        join(shm, STAGE_PREFIX + planted),
        "127.0.0.1:5000/hyperbot/app:v1\n",
      );
    }
    const flood = await inbox.pending();
    assert.deepEqual(flood.map((c) => c.stamp), ["000001700000000-000299-0000abcd"]);
    for await (const e of Deno.readDir(shm)) assert.fail(`left in dataDir: ${e.name}`);
  } finally {
    await Deno.remove(d.base, { recursive: true });
    await Deno.remove(shm, { recursive: true });
  }
});
