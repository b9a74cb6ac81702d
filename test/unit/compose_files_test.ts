import assert from "node:assert/strict";
import { join } from "node:path";
import { OperatorComposeFiles } from "../../lib/adapters/compose_files.ts";

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "hyperbot-compose-files-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("compose files: replace keeps mode, writes one backup, keeps the BOM and CRLF bytes", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "docker-compose.yml");
    const before = "\uFEFFservices:\r\n  app:\r\n    image: app:1 # c\r\n";
    await Deno.writeTextFile(file, before);
    await Deno.chmod(file, 0o604);
    const files = new OperatorComposeFiles({ dataDir: join(dir, "data") });
    const text = await files.read(file);
    assert.equal(text, before);
    const after = text!.replace("app:1", "app:2");
    const { backup } = await files.replace(file, text!, after);
    assert.equal(backup, `${file}.hyperbot-ops.bak`);
    const bytes = await Deno.readFile(file);
    assert.deepEqual([...bytes.slice(0, 3)], [0xef, 0xbb, 0xbf]);
    assert.equal(new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes), after);
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o604);
    assert.equal(
      new TextDecoder("utf-8", { ignoreBOM: true }).decode(await Deno.readFile(backup)),
      before,
    );
    assert.equal((await Deno.stat(backup)).mode! & 0o777, 0o604);
    // A second pin replaces the one backup; no temporary files are left.
    await files.replace(file, after, after.replace("app:2", "app:3"));
    assert.equal(await Deno.readTextFile(backup), after.slice(0));
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["docker-compose.yml", "docker-compose.yml.hyperbot-ops.bak"]);
  });
});

Deno.test("compose files: an edit made meanwhile is not overwritten", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "docker-compose.yml");
    await Deno.writeTextFile(file, "services: {app: {image: a:1}}\n");
    const files = new OperatorComposeFiles({ dataDir: join(dir, "data") });
    const text = (await files.read(file))!;
    await Deno.writeTextFile(file, "services: {app: {image: a:9}}\n");
    await assert.rejects(() => files.replace(file, text, "x"), /changed while/);
    assert.equal(await Deno.readTextFile(file), "services: {app: {image: a:9}}\n");
  });
});

Deno.test("compose files: a symbolic link, a file in the data folder, non-UTF-8 are refused", async () => {
  await withDir(async (dir) => {
    const real = join(dir, "real.yml");
    await Deno.writeTextFile(real, "services: {}\n");
    const link = join(dir, "docker-compose.yml");
    await Deno.symlink(real, link);
    const data = join(dir, "data");
    await Deno.mkdir(data);
    const inData = join(data, "docker-compose.yml");
    await Deno.writeTextFile(inData, "services: {}\n");
    const latin1 = join(dir, "latin1.yml");
    await Deno.writeFile(latin1, new Uint8Array([0x23, 0x20, 0xe9, 0x0a]));
    const files = new OperatorComposeFiles({ dataDir: data });
    await assert.rejects(() => files.read(link), /symbolic link/);
    await assert.rejects(() => files.read(inData), /data folder/);
    await assert.rejects(() => files.read(latin1), /not UTF-8/);
    assert.equal(await files.read(join(dir, "absent.yml")), null);
    assert.equal(await Deno.readTextFile(real), "services: {}\n");
  });
});

Deno.test("compose files: a file owned by the operator's user keeps its owner and group", async () => {
  if (Deno.uid() !== 0) throw new Error("this test needs root (it changes a file's owner)");
  await withDir(async (dir) => {
    const file = join(dir, "docker-compose.yml");
    await Deno.writeTextFile(file, "services: {app: {image: a:1}}\n");
    await Deno.chown(file, 1000, 1001);
    const files = new OperatorComposeFiles({ dataDir: join(dir, "data") });
    const text = (await files.read(file))!;
    await files.replace(file, text, text.replace("a:1", "a:2"));
    for (const path of [file, `${file}.hyperbot-ops.bak`]) {
      const st = await Deno.stat(path);
      assert.deepEqual([st.uid, st.gid], [1000, 1001], path);
    }
  });
});
