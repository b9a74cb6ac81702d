import assert from "node:assert/strict";
import type { ContainerInspect } from "../../lib/docker.ts";
import {
  bindTarget,
  buildCreateBody,
  recreateWarnings,
  sameValue,
  unrecreatableReasons,
} from "../../lib/update/recreate.ts";

const ID = "0123456789ab" + "c".repeat(52);

function inspect(overrides: Partial<ContainerInspect> = {}): ContainerInspect {
  return {
    Id: ID,
    Name: "/bot",
    Image: "sha256:" + "1".repeat(64),
    State: {
      Status: "running",
      Running: true,
      Restarting: false,
      ExitCode: 0,
      StartedAt: "",
      FinishedAt: "",
    },
    Config: {
      Hostname: "0123456789ab",
      Image: "reg.example.com/bot:1",
      Env: ["PATH=/bin", "A=1"],
      Cmd: ["run"],
      Entrypoint: ["/entry"],
      Labels: { image: "v1", mine: "yes" },
      WorkingDir: "/app",
      User: "1000",
      StopSignal: "SIGINT",
      StopTimeout: 30,
      ExposedPorts: { "8080/tcp": {}, "9000/tcp": {} },
      Volumes: { "/data": {}, "/cache": {} },
    },
    HostConfig: {
      Binds: ["/host/data:/app/data:ro", "named:/named"],
      NetworkMode: "botnet",
      Links: ["/db:/bot/database"],
      Mounts: [{ Type: "volume", Target: "/anon-mount" }],
    },
    NetworkSettings: {
      Networks: {
        botnet: {
          Aliases: ["0123456789ab", "bot", "api"],
          IPAMConfig: { IPv4Address: "10.231.0.50" },
          NetworkID: "n1",
        },
        other: { Aliases: null, IPAMConfig: null },
      },
    },
    Mounts: [
      { Type: "bind", Source: "/host/data", Destination: "/app/data", RW: false },
      { Type: "volume", Name: "named", Source: "/v/named", Destination: "/named", RW: true },
      { Type: "volume", Name: "a".repeat(64), Source: "/v/a", Destination: "/data", RW: true },
      { Type: "volume", Name: "b".repeat(64), Source: "/v/b", Destination: "/cache", RW: true },
      {
        Type: "volume",
        Name: "c".repeat(64),
        Source: "/v/c",
        Destination: "/anon-mount",
        RW: true,
      },
    ],
    ...overrides,
  };
}

const OLD_IMAGE = {
  Env: ["PATH=/bin"],
  Cmd: ["run"],
  Entrypoint: ["/entry"],
  Labels: { image: "v1" },
  WorkingDir: "/app",
  ExposedPorts: { "8080/tcp": {} },
  Volumes: { "/data": {} },
};

Deno.test("values the old image supplied are left for the new image; the container's own are kept", () => {
  const body = buildCreateBody(inspect(), OLD_IMAGE, "reg.example.com/bot:2");
  assert.equal(body.Image, "reg.example.com/bot:2");
  assert.deepEqual(body.Env, ["A=1"]);
  assert.equal(body.Cmd, null);
  assert.equal(body.Entrypoint, null);
  assert.deepEqual(body.Labels, { mine: "yes" });
  assert.equal(body.WorkingDir, undefined);
  assert.equal(body.User, "1000");
  assert.equal(body.StopSignal, "SIGINT");
  assert.equal(body.StopTimeout, 30);
  assert.deepEqual(body.ExposedPorts, { "9000/tcp": {} });
  assert.deepEqual(body.Volumes, { "/cache": {} });
  assert.equal(body.Hostname, undefined, "the ID-derived hostname is not copied");
});

Deno.test("an overridden entrypoint travels with its cmd", () => {
  const old = inspect();
  old.Config.Entrypoint = ["/custom"];
  const body = buildCreateBody(old, OLD_IMAGE, "x:2");
  assert.deepEqual(body.Entrypoint, ["/custom"]);
  assert.deepEqual(body.Cmd, ["run"]);
});

Deno.test("a changed cmd is kept even when the entrypoint came from the image", () => {
  const old = inspect();
  old.Config.Cmd = ["run", "--fast"];
  const body = buildCreateBody(old, OLD_IMAGE, "x:2");
  assert.equal(body.Entrypoint, null);
  assert.deepEqual(body.Cmd, ["run", "--fast"]);
});

Deno.test("every anonymous volume is reattached by name, binds and named volumes stay as they were", () => {
  const body = buildCreateBody(inspect(), OLD_IMAGE, "x:2");
  assert.deepEqual(body.HostConfig.Binds, ["/host/data:/app/data:ro", "named:/named"]);
  const mounts = body.HostConfig.Mounts ?? [];
  assert.deepEqual(mounts.find((m) => m.Target === "/anon-mount")?.Source, "c".repeat(64));
  assert.deepEqual(mounts.find((m) => m.Target === "/data"), {
    Type: "volume",
    Source: "a".repeat(64),
    Target: "/data",
    ReadOnly: false,
  });
  assert.equal(mounts.find((m) => m.Target === "/cache")?.Source, "b".repeat(64));
  assert.equal(mounts.filter((m) => m.Target === "/named" || m.Target === "/app/data").length, 0);
});

Deno.test("every network keeps its aliases and static IP, without the old ID alias", () => {
  const body = buildCreateBody(inspect(), OLD_IMAGE, "x:2");
  assert.deepEqual(body.NetworkingConfig.EndpointsConfig, {
    botnet: { Aliases: ["bot", "api"], IPAMConfig: { IPv4Address: "10.231.0.50" } },
    other: {},
  });
  assert.deepEqual(body.HostConfig.Links, ["db:database"]);
});

Deno.test("without the old image every value is kept as the container's own", () => {
  const body = buildCreateBody(inspect(), null, "x:2");
  assert.deepEqual(body.Env, ["PATH=/bin", "A=1"]);
  assert.match(recreateWarnings(inspect(), null).join(), /no longer present/);
});

Deno.test("containers that cannot be recreated faithfully are named with the reason", () => {
  assert.deepEqual(unrecreatableReasons(inspect()), []);
  const rm = inspect();
  rm.HostConfig.AutoRemove = true;
  assert.match(unrecreatableReasons(rm).join(), /--rm/);
  const swarm = inspect();
  swarm.Config.Labels = { "com.docker.swarm.service.id": "x" };
  assert.match(unrecreatableReasons(swarm).join(), /swarm/);
  const lost = inspect();
  lost.Mounts = [];
  assert.match(unrecreatableReasons(lost).join(), /anonymous volume/);
});

Deno.test("a container in another container's network gets no hostname, domain or exposed ports", () => {
  const old = inspect();
  old.HostConfig.NetworkMode = "container:" + "f".repeat(64);
  old.Config.Hostname = "ffffffffffff";
  old.Config.Domainname = "example";
  old.NetworkSettings.Networks = {};
  const body = buildCreateBody(old, OLD_IMAGE, "x:2");
  assert.equal(body.Hostname, undefined);
  assert.equal(body.Domainname, undefined);
  assert.equal(body.ExposedPorts, null);
  assert.deepEqual(body.NetworkingConfig.EndpointsConfig, {});
});

Deno.test("a container in the host's network does not carry the host's name over", () => {
  const old = inspect();
  old.HostConfig.NetworkMode = "host";
  old.Config.Hostname = "server-01";
  assert.equal(buildCreateBody(old, OLD_IMAGE, "x:2").Hostname, undefined);
});

Deno.test("a port published on a random host port is warned about", () => {
  const old = inspect();
  old.HostConfig.PortBindings = { "8080/tcp": [{ HostIp: "", HostPort: "" }] };
  assert.match(
    recreateWarnings(old, OLD_IMAGE).join(),
    /8080\/tcp is published on a random host port/,
  );
  old.HostConfig.PortBindings = { "8080/tcp": [{ HostIp: "", HostPort: "18080" }] };
  assert.deepEqual(recreateWarnings(old, OLD_IMAGE), []);
});

Deno.test("a hostname the operator set is kept; only the one Docker derived from the ID is dropped", () => {
  const old = inspect();
  old.Config.Hostname = "trading-bot";
  assert.equal(buildCreateBody(old, OLD_IMAGE, "x:2").Hostname, "trading-bot");
  old.Config.Hostname = "";
  assert.equal(buildCreateBody(old, OLD_IMAGE, "x:2").Hostname, "");
});

Deno.test("a container in another container's network gets no MAC address; one on its own network keeps it", () => {
  const old = inspect();
  old.Config.MacAddress = "02:42:ac:11:00:02";
  assert.equal(buildCreateBody(old, OLD_IMAGE, "x:2").MacAddress, "02:42:ac:11:00:02");
  old.HostConfig.NetworkMode = "container:" + "f".repeat(64);
  assert.equal("MacAddress" in buildCreateBody(old, OLD_IMAGE, "x:2"), false);
});

Deno.test("a network's aliases drop the old full ID too, and empty settings are not sent", () => {
  const old = inspect();
  old.NetworkSettings.Networks = {
    botnet: {
      Aliases: [ID, "0123456789ab", "bot"],
      IPAMConfig: { IPv4Address: "", IPv6Address: "" },
      Links: ["db:database"],
      DriverOpts: { "com.example.opt": "1" },
    },
    bare: { Aliases: [ID], IPAMConfig: { LinkLocalIPs: [] }, Links: [], DriverOpts: {} },
  };
  assert.deepEqual(buildCreateBody(old, OLD_IMAGE, "x:2").NetworkingConfig.EndpointsConfig, {
    botnet: {
      Aliases: ["bot"],
      Links: ["db:database"],
      DriverOpts: { "com.example.opt": "1" },
    },
    bare: {},
  });
});

Deno.test("a healthcheck, user or stop signal the old image supplied is left to the new image; one set for the container is kept", () => {
  const image = {
    ...OLD_IMAGE,
    User: "1000",
    StopSignal: "SIGINT",
    Healthcheck: { Test: ["CMD", "/health"], Interval: 5_000_000_000 },
  };
  const old = inspect();
  old.Config.Healthcheck = { Test: ["CMD", "/health"], Interval: 5_000_000_000 };
  const fromImage = buildCreateBody(old, image, "x:2");
  assert.equal("Healthcheck" in fromImage, false);
  assert.equal("User" in fromImage, false);
  assert.equal("StopSignal" in fromImage, false);
  old.Config.Healthcheck = { Test: ["CMD", "/health"], Interval: 1_000_000_000 };
  old.Config.User = "0";
  assert.deepEqual(buildCreateBody(old, image, "x:2").Healthcheck, old.Config.Healthcheck);
  assert.equal(buildCreateBody(old, image, "x:2").User, "0");
  old.Config.Healthcheck = { Test: ["CMD", "/health", "--deep"], Interval: 5_000_000_000 };
  assert.deepEqual(buildCreateBody(old, image, "x:2").Healthcheck, old.Config.Healthcheck);
  old.Config.Healthcheck = { Test: ["NONE"] };
  assert.deepEqual(buildCreateBody(old, image, "x:2").Healthcheck, { Test: ["NONE"] });
});

Deno.test("a container without env, labels, ports or volumes of its own sends none", () => {
  const old = inspect();
  old.Config.Env = null;
  delete old.Config.Labels;
  old.Config.ExposedPorts = null;
  delete old.Config.Volumes;
  const body = buildCreateBody(old, OLD_IMAGE, "x:2");
  assert.equal(body.Env, null);
  assert.equal(body.Labels, null);
  assert.equal(body.ExposedPorts, null);
  assert.equal(body.Volumes, null);
  const all = inspect();
  all.Config.ExposedPorts = { "8080/tcp": {} };
  assert.equal(buildCreateBody(all, OLD_IMAGE, "x:2").ExposedPorts, null, "all from the image");
});

Deno.test("a tmpfs mount or a named volume mount is no reason to refuse a container", () => {
  const old = inspect();
  old.HostConfig.Mounts = [
    { Type: "tmpfs", Target: "/run/bot" },
    { Type: "volume", Source: "botdata", Target: "/botdata" },
  ];
  old.Mounts = [];
  assert.deepEqual(unrecreatableReasons(old), []);
  assert.deepEqual(buildCreateBody(old, OLD_IMAGE, "x:2").HostConfig.Mounts, old.HostConfig.Mounts);
});

Deno.test("a paused container is refused with what to do", () => {
  const old = inspect();
  old.State.Paused = true;
  assert.deepEqual(unrecreatableReasons(old), ["it is paused; unpause it first"]);
});

Deno.test("a mount target written with a trailing slash is still the same mount point", () => {
  const old = inspect();
  old.HostConfig.Binds = ["/host/data:/app/data:ro", "named:/named/"];
  old.HostConfig.Mounts = [{ Type: "volume", Target: "/anon-mount//" }];
  const body = buildCreateBody(old, OLD_IMAGE, "x:2");
  const targets = (body.HostConfig.Mounts ?? []).map((m) => m.Target).sort();
  assert.deepEqual(targets, ["/anon-mount//", "/cache", "/data"]);
  assert.equal(body.HostConfig.Mounts?.[0].Source, "c".repeat(64));
});

Deno.test("every port on a random host port is named in one warning", () => {
  const old = inspect();
  old.HostConfig.PortBindings = {
    "8080/tcp": [{ HostIp: "", HostPort: "18080" }, { HostIp: "::", HostPort: "" }],
    "9000/tcp": [{ HostIp: "", HostPort: "" }],
    "9100/tcp": null,
  };
  assert.deepEqual(recreateWarnings(old, OLD_IMAGE), [
    "port 8080/tcp, 9000/tcp is published on a random host port, which will change; give it a fixed host port",
  ]);
});

Deno.test("a value equals the image's as JSON does: absent, null and empty alike, arrays in order, objects by key", () => {
  const same: [unknown, unknown][] = [
    ["SIGINT", "SIGINT"],
    [null, undefined],
    [undefined, null],
    [[], null],
    [null, []],
    [[], undefined],
    [undefined, ""],
    ["", null],
    [["sh", "-c"], ["sh", "-c"]],
    [{ Test: ["CMD", "x"], Retries: 3 }, { Retries: 3, Test: ["CMD", "x"] }],
    [{ Test: ["CMD"], Interval: undefined }, { Test: ["CMD"] }],
    [{ Test: ["CMD"] }, { Test: ["CMD"], Interval: undefined }],
  ];
  const different: [unknown, unknown][] = [
    ["SIGINT", "SIGTERM"],
    ["SIGINT", null],
    [null, "SIGINT"],
    [["sh"], null],
    [undefined, ["sh"]],
    ["0", undefined],
    [["sh", "-c"], ["-c", "sh"]],
    [["sh", "-c"], ["sh", "-x"]],
    [["sh"], ["sh", "-c"]],
    [["a"], "a"],
    ["a", ["a"]],
    [[], {}],
    [{ Test: ["CMD"], Retries: 3 }, { Test: ["CMD"], Retries: 4 }],
    [{ Test: ["CMD"] }, { Test: ["CMD"], Retries: 3 }],
    [{ Retries: 3 }, { Timeout: 3 }],
    [1, "1"],
    [{ a: 1 }, "[object Object]"],
    [{ "0": "x" }, "x"],
    ["x", { "0": "x" }],
  ];
  for (const [a, b] of same) assert.equal(sameValue(a, b), true, `${JSON.stringify([a, b])}`);
  for (const [a, b] of different) {
    assert.equal(sameValue(a, b), false, `${JSON.stringify([a, b])}`);
  }
});

Deno.test("a bind names its target after the source, with or without options", () => {
  assert.equal(bindTarget("/host/data:/app/data:ro"), "/app/data");
  assert.equal(bindTarget("named:/named/"), "/named");
  assert.equal(bindTarget("/only"), "/only");
  assert.equal(bindTarget("/"), "/");
});

Deno.test("a static IPv4 address is kept when the network has no IPv6 one", () => {
  const old = inspect();
  old.NetworkSettings.Networks = {
    botnet: { IPAMConfig: { IPv4Address: "10.231.0.50", IPv6Address: "", LinkLocalIPs: [] } },
  };
  assert.deepEqual(buildCreateBody(old, OLD_IMAGE, "x:2").NetworkingConfig.EndpointsConfig, {
    botnet: { IPAMConfig: { IPv4Address: "10.231.0.50", IPv6Address: "", LinkLocalIPs: [] } },
  });
});

Deno.test("a link without an alias is passed on as it is", () => {
  const old = inspect();
  old.HostConfig.Links = ["/db:/bot/database", "cache"];
  assert.deepEqual(buildCreateBody(old, OLD_IMAGE, "x:2").HostConfig.Links, [
    "db:database",
    "cache",
  ]);
});

Deno.test("a bind another container lends (--volumes-from) is not turned into a volume of the new one", () => {
  const old = inspect();
  old.HostConfig.VolumesFrom = ["data-keeper"];
  old.Mounts = [
    ...old.Mounts!,
    { Type: "bind", Source: "/srv/shared", Destination: "/shared", RW: true },
  ];
  const body = buildCreateBody(old, OLD_IMAGE, "x:2");
  assert.deepEqual(body.HostConfig.VolumesFrom, ["data-keeper"]);
  assert.equal(body.HostConfig.Mounts?.some((m) => m.Target === "/shared"), false);
});
