/**
 * The Engine API adapter against a scripted daemon on a unix socket: what a real daemon here
 * cannot be made to do on demand (answer like Docker 29, stall in the middle of a pull).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { SocketDockerEngine } from "../../lib/adapters/docker_engine.ts";
import { DockerError, errorText } from "../../lib/errors.ts";

interface FakeDaemon {
  socketPath: string;
  /** Paths of the requests received, in order. */
  requests: string[];
  close(): Promise<void>;
}

/** Serves `/_ping` and `/version` like a daemon of the given API range; `route` does the rest. */
async function fakeDaemon(
  api: { version: string; min: string; engine: string },
  route: (req: Request, path: string) => Response | Promise<Response>,
  options: { versionDelayMs?: number } = {},
): Promise<FakeDaemon> {
  const dir = await Deno.makeTempDir({ prefix: "hbt-fake-daemon-" });
  const socketPath = join(dir, "docker.sock");
  const requests: string[] = [];
  const server = Deno.serve(
    { transport: "unix", path: socketPath, onListen: () => {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      requests.push(path);
      if (path === "/_ping") {
        return new Response("OK", { headers: { "Api-Version": api.version } });
      }
      if (path === "/version") {
        await new Promise((r) => setTimeout(r, options.versionDelayMs ?? 0));
        return Response.json({
          Version: api.engine,
          ApiVersion: api.version,
          MinAPIVersion: api.min,
        });
      }
      const versioned = /^\/v(\d+\.\d+)\//.exec(path);
      if (versioned && Number(versioned[1].split(".")[1]) < Number(api.min.split(".")[1])) {
        // What Docker 29 answers to a client below its minimum.
        return Response.json({
          message: `client version ${
            versioned[1]
          } is too old. Minimum supported API version is ${api.min}, please upgrade your client to a newer version`,
        }, { status: 400 });
      }
      return route(req, path);
    },
  );
  return {
    socketPath,
    requests,
    async close() {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

const DOCKER_29 = { version: "1.52", min: "1.44", engine: "29.0.0" };
const ENGINE_20 = { version: "1.41", min: "1.12", engine: "20.10.24" };

for (
  const [label, api, expected] of [
    ["a Docker 29 daemon (API 1.44 to 1.52)", DOCKER_29, "1.47"],
    ["Engine 20.10 (API 1.41)", ENGINE_20, "1.41"],
  ] as const
) {
  Deno.test(`against ${label} requests go out as v${expected}`, async () => {
    const daemon = await fakeDaemon(api, (_req, path) => {
      if (path.endsWith("/containers/bot/json")) {
        return Response.json({ message: "no such container" }, { status: 404 });
      }
      return new Response("unexpected", { status: 500 });
    });
    const engine = new SocketDockerEngine({ socketPath: daemon.socketPath });
    try {
      assert.deepEqual(await engine.ping(), { apiVersion: expected, engineVersion: api.engine });
      assert.equal(await engine.inspectContainer("bot"), null);
      assert.equal(daemon.requests.at(-1), `/v${expected}/containers/bot/json`);
    } finally {
      engine.close();
      await daemon.close();
    }
  });
}

Deno.test("a daemon whose minimum API is above ours is refused with a clear error", async () => {
  const daemon = await fakeDaemon(
    { version: "1.60", min: "1.50", engine: "40.0.0" },
    () => new Response("unexpected", { status: 500 }),
  );
  const engine = new SocketDockerEngine({ socketPath: daemon.socketPath });
  try {
    await assert.rejects(engine.ping(), (err: unknown) => {
      assert.ok(err instanceof DockerError);
      assert.match(err.message, /requires API version 1\.50 or newer/);
      assert.match(err.hint ?? "", /upgrade hyperbot-ops/);
      return true;
    });
  } finally {
    engine.close();
    await daemon.close();
  }
});

/** A pull stream that sends `lines`, one every `everyMs`, then either ends or goes silent. */
function pullStream(
  lines: string[],
  everyMs: number,
  thenSilent: boolean,
  onCancel = () => {},
): Response {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      let i = 0;
      const next = () => {
        if (i < lines.length) {
          controller.enqueue(encoder.encode(lines[i++] + "\n"));
          timer = setTimeout(next, everyMs);
        } else if (!thenSilent) {
          controller.close();
        }
      };
      next();
    },
    cancel() {
      clearTimeout(timer);
      onCancel();
    },
  });
  return new Response(body, { headers: { "Content-Type": "application/json" } });
}

const progress = (n: number) =>
  JSON.stringify({ status: "Downloading", id: "abc", progressDetail: { current: n, total: 100 } });

Deno.test("a pull that goes silent is stopped after the stall deadline, with a clear error", async () => {
  let cancelled = false;
  const daemon = await fakeDaemon(
    ENGINE_20,
    () =>
      pullStream([JSON.stringify({ status: "Pulling from hyperbot/app" })], 10, true, () => {
        cancelled = true;
      }),
  );
  const engine = new SocketDockerEngine({ socketPath: daemon.socketPath, pullStallMs: 300 });
  try {
    const started = Date.now();
    await assert.rejects(
      engine.pullImage("registry.example.com/hyperbot/app:v2"),
      (err: unknown) => {
        assert.ok(err instanceof DockerError, String(err));
        assert.match(err.message, /made no progress for 0\.3 s and was stopped/);
        assert.equal(err.object, "registry.example.com/hyperbot/app:v2");
        assert.match(err.hint ?? "", /bot was not touched/);
        return true;
      },
    );
    const took = Date.now() - started;
    assert.ok(took >= 300 && took < 5_000, `stopped after ${took} ms`);
    // The connection was closed, which is how the daemon learns to cancel the pull.
    for (let i = 0; i < 40 && !cancelled; i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(cancelled, "the daemon saw the request end");
  } finally {
    engine.close();
    await daemon.close();
  }
});

Deno.test("a slow pull that keeps sending progress is not stopped", async () => {
  const lines = Array.from({ length: 8 }, (_, i) => progress(i * 10));
  lines.push(JSON.stringify({ status: "Status: Downloaded newer image" }));
  const daemon = await fakeDaemon(ENGINE_20, () => pullStream(lines, 300, false));
  // The whole pull takes ~2.7 s, more than twice the stall deadline, but never pauses that long.
  const engine = new SocketDockerEngine({ socketPath: daemon.socketPath, pullStallMs: 1_000 });
  try {
    const seen: number[] = [];
    await engine.pullImage("registry.example.com/hyperbot/app:v2", {
      onProgress: (p) => p.current !== undefined && seen.push(p.current),
    });
    assert.deepEqual(seen, [0, 10, 20, 30, 40, 50, 60, 70]);
  } finally {
    engine.close();
    await daemon.close();
  }
});

Deno.test("a slow API version negotiation does not count against the pull's stall deadline", async () => {
  const lines = [progress(10), JSON.stringify({ status: "Status: Downloaded newer image" })];
  const daemon = await fakeDaemon(ENGINE_20, () => pullStream(lines, 20, false), {
    versionDelayMs: 1_500,
  });
  const engine = new SocketDockerEngine({ socketPath: daemon.socketPath, pullStallMs: 1_000 });
  try {
    await engine.pullImage("registry.example.com/hyperbot/app:v2");
  } finally {
    engine.close();
    await daemon.close();
  }
});

Deno.test("an error line in the pull stream fails the pull with the daemon's message", async () => {
  const daemon = await fakeDaemon(ENGINE_20, () =>
    pullStream(
      [
        progress(10),
        JSON.stringify({
          errorDetail: { message: "unexpected EOF" },
          error: "unexpected EOF",
        }),
      ],
      10,
      false,
    ));
  const engine = new SocketDockerEngine({ socketPath: daemon.socketPath, pullStallMs: 5_000 });
  try {
    await assert.rejects(
      engine.pullImage("registry.example.com/hyperbot/app:v2"),
      (err: unknown) => err instanceof DockerError && /unexpected EOF/.test(err.message),
    );
  } finally {
    engine.close();
    await daemon.close();
  }
});

for (
  const [label, api, calls] of [
    ["Docker 29 (API 1.47): every network in the create call", DOCKER_29, [
      "POST /v1.47/containers/create net-a,net-b",
    ]],
    [
      "Engine 20.10 (API 1.41): the primary network at create, the other connected after",
      ENGINE_20,
      [
        "POST /v1.41/containers/create net-a",
        "POST /v1.41/networks/net-b/connect",
      ],
    ],
  ] as const
) {
  Deno.test(`a container on two networks, against ${label}`, async () => {
    const seen: string[] = [];
    const daemon = await fakeDaemon(api, async (req, path) => {
      if (path.endsWith("/containers/create")) {
        const body = await req.json();
        const nets = Object.keys(body.NetworkingConfig?.EndpointsConfig ?? {}).sort();
        seen.push(`${req.method} ${path} ${nets.join(",")}`);
        return Response.json({ Id: "c0ffee" }, { status: 201 });
      }
      if (path.endsWith("/connect")) {
        const body = await req.json();
        assert.equal(body.Container, "c0ffee");
        assert.deepEqual(body.EndpointConfig?.Aliases, ["bot-b"]);
        seen.push(`${req.method} ${path}`);
        return new Response(null, { status: 200 });
      }
      return new Response("unexpected", { status: 500 });
    });
    const engine = new SocketDockerEngine({ socketPath: daemon.socketPath });
    try {
      const id = await engine.createContainer("bot-updating", {
        Image: "registry.example.com/hyperbot/app:v2",
        HostConfig: { NetworkMode: "net-a" },
        NetworkingConfig: {
          EndpointsConfig: { "net-a": { Aliases: ["bot-a"] }, "net-b": { Aliases: ["bot-b"] } },
        },
      });
      assert.equal(id, "c0ffee");
      assert.deepEqual(seen, calls);
    } finally {
      engine.close();
      await daemon.close();
    }
  });
}

const PULL_AUTH = {
  username: "bot",
  password: "pa55-w0rd-secret",
  serveraddress: "registry.example.com",
};

/** Every form in which the credentials could show up in an error. */
function leaks(text: string, header: string): string[] {
  const basic = btoa(`${PULL_AUTH.username}:${PULL_AUTH.password}`);
  return [PULL_AUTH.password, header, basic, basic.replace(/=+$/, "")].filter((s) =>
    text.includes(s)
  );
}

for (
  const [label, answer] of [
    [
      "a refused pull whose answer echoes the credentials",
      (header: string) =>
        Response.json({
          message: `unauthorized: Basic ${
            btoa(`${PULL_AUTH.username}:${PULL_AUTH.password}`)
          } X-Registry-Auth: ${header} password=${PULL_AUTH.password}`,
        }, { status: 500 }),
    ],
    [
      "an error line in the pull stream that echoes the credentials",
      (header: string) =>
        pullStream(
          [JSON.stringify({
            errorDetail: { message: `denied for ${header}, Bearer ${PULL_AUTH.password}` },
          })],
          10,
          false,
        ),
    ],
  ] as const
) {
  Deno.test(`${label}: the error keeps neither the secret nor the auth header`, async () => {
    let header = "";
    const daemon = await fakeDaemon(ENGINE_20, (req) => {
      header = req.headers.get("X-Registry-Auth") ?? "";
      return answer(header);
    });
    const engine = new SocketDockerEngine({ socketPath: daemon.socketPath, pullStallMs: 5_000 });
    try {
      await assert.rejects(
        engine.pullImage("registry.example.com/hyperbot/app:v2", { auth: PULL_AUTH }),
        (err: unknown) => {
          assert.ok(err instanceof DockerError);
          assert.ok(header.length > 0, "the fake daemon got no auth header");
          const all = `${errorText(err)} ${err.hint ?? ""} ${err.stack}`;
          assert.deepEqual(leaks(all, header), [], all);
          assert.match(err.message, /\[redacted\]/);
          return true;
        },
      );
    } finally {
      engine.close();
      await daemon.close();
    }
  });
}

Deno.test("a pull's stall deadline is 5 minutes unless told otherwise", async () => {
  const lines = [progress(10), JSON.stringify({ status: "Status: Downloaded newer image" })];
  const daemon = await fakeDaemon(ENGINE_20, () => pullStream(lines, 5, false));
  const engine = new SocketDockerEngine({ socketPath: daemon.socketPath });
  // Five real minutes cannot pass in a unit test: see the timer the deadline arms instead.
  const armed: number[] = [];
  const realSetTimeout = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    armed.push(ms ?? 0);
    return realSetTimeout(fn, ms);
  }) as typeof setTimeout;
  try {
    await engine.pullImage("registry.example.com/hyperbot/app:v2");
  } finally {
    globalThis.setTimeout = realSetTimeout;
    engine.close();
    await daemon.close();
  }
  assert.ok(armed.includes(300_000), `timers armed: ${armed.join(", ")}`);
  assert.ok(!armed.some((ms) => ms > 60_000 && ms !== 300_000), "no other long deadline");
});
