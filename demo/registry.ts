/**
 * The demo's throwaway registry: `docker-registry` on a free loopback port, its storage in the
 * demo's temporary folder. Docker pushes to and pulls from 127.0.0.1:<any port> without TLS.
 */

import { join } from "node:path";

export interface DemoRegistry {
  /** `127.0.0.1:<port>`, the registry part of the image references. */
  address: string;
  process: Deno.ChildProcess;
  stop(): Promise<void>;
}

/** A port nothing listens on now: the kernel picks one, we let it go again. */
export function freeLoopbackPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Starts the registry on a free loopback port and waits until it answers. Another process may
 * take the port between the pick and the registry's bind; then it tries another (5 times).
 */
export async function startDemoRegistry(dir: string): Promise<DemoRegistry> {
  let lastError = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const address = `127.0.0.1:${freeLoopbackPort()}`;
    const config = join(dir, "registry.yml");
    await Deno.writeTextFile(
      config,
      `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${
        join(dir, "registry")
      }\nhttp:\n  addr: ${address}\n`,
    );
    const process = new Deno.Command("docker-registry", {
      args: ["serve", config],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let exited = false;
    const status = process.status.then((s) => {
      exited = true;
      return s;
    });
    const stderr = new Response(process.stderr).text();
    for (let i = 0; i < 100 && !exited; i++) {
      const ok = await fetch(`http://${address}/v2/`, { signal: AbortSignal.timeout(500) })
        .then((r) => (r.body?.cancel(), r.ok), () => false);
      if (ok) {
        return {
          address,
          process,
          async stop() {
            try {
              process.kill("SIGTERM");
            } catch { /* gone */ }
            await status;
            await stderr.catch(() => "");
          },
        };
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (!exited) {
      process.kill("SIGKILL");
      await status;
      throw new Error(`the registry did not answer on ${address} within 10 s`);
    }
    await status;
    lastError = (await stderr.catch(() => "")).trim().split("\n").pop() ?? "";
  }
  throw new Error(`the registry could not start on a free loopback port: ${lastError}`);
}
