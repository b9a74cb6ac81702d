import assert from "node:assert/strict";
import { startDemoRegistry } from "../../demo/registry.ts";

Deno.test("the demo's registry starts on a free loopback port, also when 5055 is taken", async () => {
  // Hold 5055 the way another program would (if something holds it already, so much the better).
  let holder: Deno.Listener | null = null;
  try {
    holder = Deno.listen({ hostname: "127.0.0.1", port: 5055 });
  } catch (err) {
    if (!(err instanceof Deno.errors.AddrInUse)) throw err;
  }
  const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  const registries = [];
  try {
    for (const dir of dirs) registries.push(await startDemoRegistry(dir));
    const [a, b] = registries;
    for (const r of registries) {
      assert.match(r.address, /^127\.0\.0\.1:\d+$/);
      assert.notEqual(r.address, "127.0.0.1:5055");
      const answer = await fetch(`http://${r.address}/v2/`);
      await answer.body?.cancel();
      assert.equal(answer.status, 200, `the registry answers on ${r.address}`);
    }
    assert.notEqual(a.address, b.address, "two demos side by side get two ports");
  } finally {
    for (const r of registries) await r.stop();
    holder?.close();
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  }
});
