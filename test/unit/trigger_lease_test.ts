/**
 * A write lease (F_SETLEASE F_WRLCK) the container holds on its trigger makes every other open
 * for reading fail with EAGAIN. The claim must still end (rejected, the staged name removed) and
 * the claims already in the claim folder must still be settled.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CLAIM_DIR, FileTriggerInbox, STAGE_PREFIX } from "../../lib/adapters/trigger_inbox.ts";
import { parseTrigger } from "../../lib/watch/trigger.ts";

/** A subprocess holding a write lease on a new file at `path`; kill() releases it. */
async function leased(path: string, content: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", new URL("../support/lease_holder.ts", import.meta.url).pathname]
      .concat([path, content]),
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  reader.releaseLock();
  const kill = async () => {
    try {
      child.kill();
    } catch { /* exited already */ }
    await child.stdout.cancel();
    await child.status;
  };
  if (!first.includes("leased")) {
    await kill();
    throw new Error(`the lease holder did not take its lease: ${first}`);
  }
  return { kill };
}

async function dirs() {
  const base = await Deno.makeTempDir({ prefix: "hbt-lease-" });
  const dataDir = join(base, "data");
  const stateDir = join(base, "state");
  await Deno.mkdir(dataDir);
  await Deno.mkdir(stateDir);
  return { base, dataDir, stateDir };
}

Deno.test("a trigger the container holds a write lease on is claimed, rejected as unreadable, and its staged name removed", async () => {
  const d = await dirs();
  const holder = await leased(join(d.dataDir, ".update_trigger"), "127.0.0.1:5000/app:v2\n");
  try {
    const claim = await new FileTriggerInbox(d.dataDir, d.stateDir).claim();
    assert.ok(claim);
    assert.equal(claim.content.bytes, null);
    assert.throws(() => parseTrigger(claim.content), /could not be read.*EAGAIN/);
    assert.deepEqual([...Deno.readDirSync(d.dataDir)], []);
    assert.deepEqual([...Deno.readDirSync(join(d.stateDir, CLAIM_DIR))], []);
  } finally {
    await holder.kill();
    await Deno.remove(d.base, { recursive: true });
  }
});

Deno.test("a leased staged name left by a killed claim does not keep the start from settling the claims in the claim folder", async () => {
  const d = await dirs();
  const stamp = "000001700000005-000002-0000abcd";
  await Deno.mkdir(join(d.stateDir, CLAIM_DIR));
  await Deno.writeTextFile(join(d.stateDir, CLAIM_DIR, "000001700000001-000001-0000abcd"), "x:1");
  const holder = await leased(join(d.dataDir, STAGE_PREFIX + stamp), "127.0.0.1:5000/app:v2\n");
  try {
    const pending = await new FileTriggerInbox(d.dataDir, d.stateDir).pending();
    assert.deepEqual(pending.map((c) => c.stamp), ["000001700000001-000001-0000abcd"]);
    assert.deepEqual([...Deno.readDirSync(d.dataDir)], []);
  } finally {
    await holder.kill();
    await Deno.remove(d.base, { recursive: true });
  }
});
