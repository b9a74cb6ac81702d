import assert from "node:assert/strict";
import { join } from "node:path";
import { openLogFile, RotatingLogFile } from "../../lib/adapters/log_file.ts";
import { closeLogging, loggerFor, setupLogging } from "../../lib/log.ts";

const line = (text: string) => new TextEncoder().encode(`${text}\n`);

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "hbt-logfile-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a link planted as a log file is not followed: its target is neither written nor chmodded", async () => {
  await withDir(async (dir) => {
    const target = join(dir, "roots-file");
    await Deno.writeTextFile(target, "root's\n");
    await Deno.chmod(target, 0o600);
    await Deno.symlink(target, join(dir, "update.log"));
    assert.throws(() => openLogFile(join(dir, "update.log")), /ELOOP|symbolic/);
    assert.equal(await Deno.readTextFile(target), "root's\n");
    assert.equal((await Deno.stat(target)).mode! & 0o777, 0o600);
  });
});

Deno.test("setupLogging with a link as the log file leaves the target alone and keeps running", async () => {
  await withDir(async (dir) => {
    const target = join(dir, "roots-file");
    await Deno.writeTextFile(target, "root's\n");
    await Deno.chmod(target, 0o600);
    await Deno.symlink(target, join(dir, "update.log"));
    await setupLogging({ logDir: dir, files: ["update"], stderrLevel: "fatal" });
    loggerFor("update").info("pulled", { image: "x" });
    await closeLogging();
    assert.equal(await Deno.readTextFile(target), "root's\n");
    assert.equal((await Deno.stat(target)).mode! & 0o777, 0o600);
  });
});

Deno.test("a FIFO planted as a log file is refused without blocking", async () => {
  await withDir(async (dir) => {
    const fifo = join(dir, "monitor.log");
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.equal(mk.code, 0, "mkfifo is needed for this test");
    assert.throws(() => openLogFile(fifo));
  });
});

Deno.test("an existing log file gets mode 0640 through its handle", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "update.log");
    await Deno.writeTextFile(path, "old\n");
    await Deno.chmod(path, 0o666);
    const file = new RotatingLogFile(path, { maxBytes: 1000, maxFiles: 2 });
    file.write(line("new"));
    file.close();
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o640);
    assert.equal(await Deno.readTextFile(path), "old\nnew\n");
  });
});

Deno.test("log files rotate by size: disk use stays bounded however much is written", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "monitor.log");
    const file = new RotatingLogFile(path, { maxBytes: 1000, maxFiles: 3 });
    for (let i = 0; i < 5000; i++) file.write(line(`${i} ${"x".repeat(40)}`));
    file.close();
    const names: string[] = [];
    let total = 0;
    for await (const e of Deno.readDir(dir)) {
      names.push(e.name);
      total += (await Deno.stat(join(dir, e.name))).size;
    }
    assert.deepEqual(names.sort(), [
      "monitor.log",
      "monitor.log.1",
      "monitor.log.2",
      "monitor.log.3",
    ]);
    assert.ok(total <= 4 * 1000, `${total} bytes`);
    assert.match(await Deno.readTextFile(path), /4999 x+\n$/);
  });
});

Deno.test("the log files the program writes rotate at 5 MiB and keep the live file and five more, mode 0640", async () => {
  await withDir(async (dir) => {
    await setupLogging({ logDir: dir, files: ["update"], stderrLevel: "fatal" });
    const log = loggerFor("update");
    const text = "y".repeat(1900);
    // About 32 MiB: more than the six files can hold.
    for (let i = 0; i < 17_000; i++) log.debug(`${i} ${text}`);
    await closeLogging();
    const files = new Map<string, Deno.FileInfo>();
    for await (const e of Deno.readDir(dir)) files.set(e.name, await Deno.stat(join(dir, e.name)));
    assert.deepEqual([...files.keys()].sort(), [
      "update.log",
      "update.log.1",
      "update.log.2",
      "update.log.3",
      "update.log.4",
      "update.log.5",
    ]);
    for (const [name, info] of files) {
      assert.equal(info.mode! & 0o777, 0o640, `${name} mode`);
      assert.ok(info.size <= 5 * 1024 * 1024, `${name}: ${info.size} bytes`);
      if (name !== "update.log") {
        assert.ok(info.size > 5 * 1024 * 1024 - 4096, `${name} was rotated full: ${info.size}`);
      }
    }
  });
});
