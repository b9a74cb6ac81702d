/**
 * The real `hyperbot-ops watch` process against a data folder the test controls, with the
 * moves an attacker inside the bot's container makes (issue 8): a trigger folder 12 000 levels
 * deep, the same planted under the staging name before the start, a folder handle kept into
 * the trigger while entries are made through it, a FIFO behind a link, and a device node
 * swapped in with renameat2(RENAME_EXCHANGE) while the watcher writes status and history.
 *
 * The triggers name an image outside the allow list, so each is claimed and rejected (status
 * "rejected" with the request id) without the Docker engine; what is tested is that the
 * watcher lives, claims every later trigger promptly, never reaches stateDir or a device, and
 * stops within 2 s of SIGTERM. The folder removal budget leaves a deep tree to later starts.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type Running, startCli } from "../support/cli.ts";
import { eventually } from "../support/wait.ts";
import {
  countOpens,
  holdFolder,
  makeCharDevice,
  makeDeepFolder,
  startSwapLoop,
} from "../support/hostile.ts";
import { close, O_CREAT_EXCL_WRONLY, openat } from "../../lib/adapters/libc.ts";
import type { Heartbeat } from "../../lib/watch/heartbeat.ts";
import type { StatusFile } from "../../lib/update/report.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const STAGE = ".update_trigger.claimed-";

interface Setup {
  base: string;
  dataDir: string;
  stateDir: string;
  trigger: string;
  args: string[];
  cleanup(): Promise<void>;
}

async function setup(label: string): Promise<Setup> {
  const base = await Deno.makeTempDir({ prefix: `hbt-hostile-${label}-` });
  const dataDir = join(base, "data");
  const stateDir = join(base, "state");
  await Deno.mkdir(dataDir);
  await Deno.writeTextFile(join(base, "config.json"), "{}\n");
  return {
    base,
    dataDir,
    stateDir,
    trigger: join(dataDir, ".update_trigger"),
    args: [
      "watch",
      "--config",
      join(base, "config.json"),
      "--base-dir",
      base,
      "--state-dir",
      stateDir,
      "--container",
      `hbt-hostile-${label}`,
      "--allowed-image",
      "127.0.0.1:5000/hyperbot/app",
    ],
    async cleanup() {
      const rm = await new Deno.Command("rm", { args: ["-rf", base] }).output();
      if (!rm.success) throw new Error(`cannot remove ${base}`);
    },
  };
}

type Watch = Running;

function startWatch(s: Setup): Watch {
  return startCli(s.args, { keep: 100_000 });
}

async function ready(s: Setup, w: Watch): Promise<void> {
  await eventually("watch ready", async () => {
    try {
      const hb = JSON.parse(
        await Deno.readTextFile(join(s.stateDir, "heartbeat.json")),
      ) as Heartbeat;
      return hb.pid === w.child.pid && hb.state === "idle" ? true : null;
    } catch {
      return null;
    }
  }, { timeoutMs: 60_000, describe: () => Promise.resolve(w.output().slice(-3_000)) });
}

/** Writes a trigger the way the bot does (a whole file renamed into place). */
async function writeTrigger(s: Setup, id: string): Promise<void> {
  const tmp = join(s.dataDir, `.tmp-${id}`);
  await Deno.writeTextFile(tmp, JSON.stringify({ image: "127.0.0.1:5000/other/app:v1", id }));
  await Deno.rename(tmp, s.trigger);
}

/**
 * Waits until the watcher has answered request `id` (status "rejected", the image is not
 * allowed); returns how long that took. `limitMs` is far above the 100 ms target (bench/
 * measures that) and far below the 30 s rescan: a stalled event path fails it.
 */
async function answered(s: Setup, w: Watch, id: string, limitMs = 10_000): Promise<number> {
  const at = performance.now();
  await eventually(`request ${id} answered`, async () => {
    try {
      const status = JSON.parse(
        await Deno.readTextFile(join(s.dataDir, ".update_status.json")),
      ) as StatusFile;
      return status.requestId === id ? true : null;
    } catch {
      return null;
    }
  }, {
    timeoutMs: limitMs,
    intervalMs: 20,
    describe: () => Promise.resolve(w.output().slice(-3_000)),
  });
  return performance.now() - at;
}

/** Waits until the trigger entry is gone from dataDir (the watcher claimed it). */
async function claimed(s: Setup): Promise<void> {
  await eventually("the trigger claimed", async () => {
    try {
      await Deno.lstat(s.trigger);
      return null;
    } catch {
      return true;
    }
  }, { timeoutMs: 10_000, intervalMs: 10 });
}

async function assertStopsInTime(w: Watch): Promise<void> {
  // A watcher that hangs is killed after 10 s, so the test fails instead of hanging.
  const { code, ms } = await w.stop(10_000);
  assert.equal(code, 0, w.output().slice(-3_000));
  // The promise is 2 s; the margin is for a loaded test machine, not for the watcher.
  assert.ok(ms < 4_000, `SIGTERM took ${Math.round(ms)} ms`);
}

Deno.test(
  "a trigger folder 12 000 levels deep neither kills the watcher nor holds up the next trigger",
  opts,
  async () => {
    const s = await setup("deep");
    const w = startWatch(s);
    try {
      await ready(s, w);
      const tmp = join(s.dataDir, "deep-in-progress");
      makeDeepFolder(tmp, 12_000);
      await Deno.rename(tmp, s.trigger);
      await claimed(s);
      await writeTrigger(s, "after-deep");
      await answered(s, w, "after-deep");
      assert.equal(
        await Promise.race([w.exited.then(() => "exited"), Promise.resolve("alive")]),
        "alive",
      );
      // Only regular files ever reach the claim folder, and the answered request's goes soon
      // after its status is written.
      const claimFolder = join(s.stateDir, "claimed");
      for (const e of Deno.readDirSync(claimFolder)) assert.ok(e.isFile, `${e.name} in claimed/`);
      await eventually(
        "the claim folder empty",
        () => Promise.resolve([...Deno.readDirSync(claimFolder)].length === 0 ? true : null),
        { timeoutMs: 10_000 },
      );
      await assertStopsInTime(w);
    } finally {
      await w.stop().catch(() => {});
      await s.cleanup();
    }
  },
);

Deno.test(
  "a deep folder planted under the staging name before the start does not crash-loop the watcher",
  opts,
  async () => {
    const s = await setup("staged");
    makeDeepFolder(join(s.dataDir, `${STAGE}000001700000000-000001-0000abcd`), 12_000);
    // systemd would restart a crashing watcher: three starts in a row each live and answer.
    for (const round of [1, 2, 3]) {
      const w = startWatch(s);
      try {
        await ready(s, w);
        await writeTrigger(s, `after-staged-${round}`);
        await answered(s, w, `after-staged-${round}`);
        await assertStopsInTime(w);
      } finally {
        await w.stop().catch(() => {});
      }
    }
    await s.cleanup();
  },
);

Deno.test(
  "a folder handle the container keeps into its trigger never reaches stateDir",
  opts,
  async () => {
    const s = await setup("handle");
    const w = startWatch(s);
    try {
      await ready(s, w);
      const tmp = join(s.dataDir, "held");
      await Deno.mkdir(tmp);
      const handle = holdFolder(tmp);
      let made = 0;
      let stopped = false;
      // Entries made through the handle as fast as possible, before and after the claim.
      const maker = (async () => {
        while (!stopped) {
          for (let i = 0; i < 200; i++) {
            try {
              close(openat(handle.fd, `e${made++}`, O_CREAT_EXCL_WRONLY, 0o644));
            } catch {
              // The folder was removed: the kernel refuses new entries in it.
            }
          }
          await new Promise((r) => setTimeout(r, 0));
        }
      })();
      try {
        await Deno.rename(tmp, s.trigger);
        await claimed(s);
        await writeTrigger(s, "after-handle");
        await answered(s, w, "after-handle");
        const where = handle.whereNow();
        assert.ok(!where.startsWith(s.stateDir), `the container's handle points at ${where}`);
      } finally {
        stopped = true;
        await maker;
        handle.close();
      }
      const inState: string[] = [];
      const walk = (dir: string) => {
        for (const e of Deno.readDirSync(dir)) {
          inState.push(join(dir, e.name));
          if (e.isDirectory) walk(join(dir, e.name));
        }
      };
      walk(s.stateDir);
      assert.ok(made > 0);
      assert.ok(
        inState.every((p) => !/\/e\d+$/.test(p)),
        `entries made through the handle landed in stateDir: ${inState.slice(0, 5)}`,
      );
      await assertStopsInTime(w);
    } finally {
      await w.stop().catch(() => {});
      await s.cleanup();
    }
  },
);

Deno.test("a FIFO behind a link neither delays detection nor the stop", opts, async () => {
  const s = await setup("fifo");
  const w = startWatch(s);
  try {
    await ready(s, w);
    await Deno.mkdir(join(s.dataDir, "sub"));
    const mk = await new Deno.Command("mkfifo", { args: [join(s.dataDir, "sub", "fifo")] })
      .output();
    assert.ok(mk.success, "mkfifo must exist for this test");
    await Deno.symlink("sub/fifo", join(s.dataDir, "lnk"));
    // Several triggers after it: with Deno.watchFs each waited for the 30 s rescan.
    for (const id of ["fifo-1", "fifo-2", "fifo-3"]) {
      await writeTrigger(s, id);
      await answered(s, w, id, 5_000);
    }
    await assertStopsInTime(w);
  } finally {
    await w.stop().catch(() => {});
    await s.cleanup();
  }
});

Deno.test(
  "the watcher never opens a device node swapped in for its status or history file",
  opts,
  async () => {
    const s = await setup("swap");
    const device = join(s.base, "null");
    await makeCharDevice(device);
    const w = startWatch(s);
    const opens = countOpens(device);
    try {
      await ready(s, w);
      await writeTrigger(s, "swap-0");
      await answered(s, w, "swap-0");
      const loops = [
        startSwapLoop(join(s.dataDir, ".update_history.jsonl"), join(s.dataDir, "dh"), device),
        startSwapLoop(join(s.dataDir, ".update_status.json"), join(s.dataDir, "ds"), device),
      ];
      let swaps = 0;
      try {
        // Within the history budget (20 a minute): each rejection reads and rewrites history.
        for (let i = 1; i <= 15; i++) {
          await writeTrigger(s, `swap-${i}`);
          await claimed(s);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        for (const loop of loops) swaps += await loop.stop();
      }
      assert.ok(swaps > 1_000, `the swap loops ran (${swaps} swaps)`);
      assert.equal(opens.count(), 0, "the watcher opened the device");
      assert.equal(
        await Promise.race([w.exited.then(() => "exited"), Promise.resolve("alive")]),
        "alive",
      );
      await assertStopsInTime(w);
    } finally {
      opens.close();
      await w.stop().catch(() => {});
      await s.cleanup();
    }
  },
);
