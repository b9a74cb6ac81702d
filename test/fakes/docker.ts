/**
 * `FakeDockerEngine`: an in-memory Docker daemon for the update engine's unit tests.
 *
 * It holds containers and images in maps, logs every call in `calls`, and fails where a named
 * option says so. It behaves like dockerd where the update depends on it: unique names (409),
 * rename conflicts, no removal of a running container without force, the image config merged
 * into a new container the way the daemon merges it, anonymous volumes with generated names,
 * host ports that only one running container may bind, health for images with a HEALTHCHECK.
 * The contract suite (test/docker/engine_contract.ts) runs against it and the real engine.
 *
 * Time does not pass by itself: a container that `exitAfterStart` exits when it starts, a
 * `crashLoop` container restarts once per inspect, and `healthOf` sequences advance per inspect.
 */

import { createHash } from "node:crypto";
import { DockerError } from "../../lib/errors.ts";
import {
  familiarRepository,
  formatImageRef,
  parseImageRef,
  repositoryOf,
} from "../../lib/image_ref.ts";
import type {
  ContainerConfig,
  ContainerInfo,
  ContainerInspect,
  CreateContainerBody,
  DockerEngine,
  EndpointSettings,
  EngineVersion,
  ImageInfo,
  MountPoint,
  PullOptions,
  RestartPolicy,
} from "../../lib/docker.ts";
import {
  containerInfoFromInspect,
  imageInfoFromInspect,
} from "../../lib/adapters/docker_engine.ts";

export type PullFailure = "not_found" | "unreachable" | "disk_full" | "unauthorized";
export type HealthStatus = "healthy" | "unhealthy" | "starting";

/** The methods of DockerEngine, for `calls` and `failNext`. */
export type FakeMethod =
  | "ping"
  | "inspectContainer"
  | "createContainer"
  | "renameContainer"
  | "startContainer"
  | "stopContainer"
  | "removeContainer"
  | "containerLogs"
  | "setRestartPolicy"
  | "pullImage"
  | "inspectImage"
  | "listImages"
  | "removeImage"
  | "tagImage";

export interface FakeCall {
  method: FakeMethod;
  args: unknown[];
}

/**
 * Failures and behaviour, all optional. Keys that name an image match the reference a container
 * was created from (`Config.Image`, as given), its normalised form, or the image ID.
 * The options are read on every call: a test may change them between steps.
 */
export interface FakeDockerOptions {
  /** Every call throws "cannot reach the Docker daemon" (status undefined). */
  unreachable?: boolean;
  /** Every pull fails this way; or, as a map, pulls of these references. */
  failPull?: PullFailure | Map<string, PullFailure>;
  /** Starting a container of this image (or these images) fails like an OCI runtime error (500). */
  failStartOf?: string | Iterable<string>;
  /** A container of this image exits with this code as soon as it starts. */
  exitAfterStart?: Map<string, number>;
  /**
   * Health of running containers of an image that has a Healthcheck. An array is a sequence:
   * each inspect takes the next status, the last one stays. Default "healthy".
   */
  healthOf?: Map<string, HealthStatus | HealthStatus[]>;
  /** Containers of this image (or these images) restart forever: Restarting, RestartCount grows per inspect. */
  crashLoop?: string | Iterable<string>;
  /** Starting a container of this image fails because a host port is taken by something outside Docker. */
  portConflictFor?: string | Iterable<string>;
  /** Lines a container of this image writes when it starts (containerLogs). */
  logsOf?: Map<string, string[]>;
  /** Exit code a container of this image reports when stopped; default 0 (137 when killed). */
  exitCodeOnStop?: Map<string, number>;
  /**
   * The process in a container of this image ignores its stop signal (unless it is SIGKILL):
   * a stop ends, after the stop timeout, with the daemon's SIGKILL (exit 137).
   */
  ignoresStopSignal?: string | Iterable<string>;
  /**
   * A stop of a container of this image is interrupted: the call never returns (its caller
   * was killed while the daemon was stopping it) and the container keeps running for this
   * many more inspects, then exits; a later stopContainer waits the stop out at once.
   */
  stopLingers?: Map<string, number>;
  /** The version ping() reports. Default API 1.47, engine 27.0.0. */
  version?: EngineVersion;
  /** Clock for Created/StartedAt/FinishedAt. Default: a fixed start that advances 1 s per use. */
  now?: () => Date;
}

/** The config of an image the fake holds (what `docker image inspect` shows as Config). */
export type FakeImageConfig = ContainerConfig;

interface FakeImage {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  created: string;
  config: ContainerConfig;
}

interface FakeContainer {
  inspect: ContainerInspect;
  /** Host ports it binds while running: "8080/tcp". */
  hostPorts: string[];
  logs: string[];
  healthStep: number;
  /** Stopped through the API: no restart policy or crash loop brings it back. */
  stopped: boolean;
  /** How the last stop was asked for: the signal and timeout the daemon applied. */
  lastStop?: { signal: string; timeoutSeconds: number };
  /** Inspects left before a stop still in progress ends (stopLingers). */
  stopping?: number;
}

interface NextFailure {
  status: number;
  message: string;
  times: number;
}

const SOCKET = "/var/run/docker.sock";
const STOPPED_AT = "0001-01-01T00:00:00Z";

export class FakeDockerEngine implements DockerEngine {
  readonly containers = new Map<string, FakeContainer>();
  /** Local images by ID. */
  readonly images = new Map<string, FakeImage>();
  /** Images a pull can fetch, by normalised reference (`registry/org/app:tag`). */
  readonly registry = new Map<string, { config: ContainerConfig; digest: string; id: string }>();
  readonly calls: FakeCall[] = [];
  options: FakeDockerOptions;

  #failNext = new Map<FakeMethod, NextFailure>();
  #networkIds = new Map<string, string>();
  #ipCounter = 2;
  #clock = Date.parse("2026-01-01T00:00:00Z");

  constructor(options: FakeDockerOptions = {}) {
    this.options = options;
  }

  // ---- helpers for tests -------------------------------------------------------------------

  /** Adds a local image under `ref` (moving the tag from any other image). Returns its ID. */
  addImage(ref: string, config: FakeImageConfig = {}): string {
    const normal = normalise(ref);
    const id = imageId(normal, config);
    let image = this.images.get(id);
    if (!image) {
      image = {
        id,
        repoTags: [],
        repoDigests: [],
        created: this.#now(),
        config: structuredClone(config),
      };
      this.images.set(id, image);
    }
    this.#tag(image, ref);
    return id;
  }

  /**
   * Puts an image in the fake registry so that `pullImage(ref)` fetches it. Publishing again
   * under the same reference with another config is a new version. Returns the image ID.
   */
  publishImage(ref: string, config: FakeImageConfig = {}): string {
    const normal = normalise(ref);
    const id = imageId(normal, config);
    const digest = "sha256:" + sha256(`manifest:${id}`);
    this.registry.set(normal, { config: structuredClone(config), digest, id });
    return id;
  }

  /**
   * Creates and starts a container in one go, as the "old" bot that runs before an update.
   * The image must have been added. Returns the container's ID.
   */
  async runContainer(
    name: string,
    body: Partial<CreateContainerBody> & { Image: string },
  ): Promise<string> {
    const full: CreateContainerBody = {
      ...body,
      HostConfig: body.HostConfig ?? {},
      NetworkingConfig: body.NetworkingConfig ?? { EndpointsConfig: {} },
    };
    const id = this.#create(name, full);
    await this.#start(id);
    return id;
  }

  /** Makes the next `times` calls of `method` fail with this status and message. */
  failNext(method: FakeMethod, error: { status: number; message: string }, times = 1): void {
    this.#failNext.set(method, { ...error, times });
  }

  /** Appends lines to a container's log. */
  writeLogs(nameOrId: string, ...lines: string[]): void {
    this.#mustFind(nameOrId).logs.push(...lines);
  }

  /** Makes a running container exit, as if its process ended. */
  exitContainer(nameOrId: string, exitCode: number): void {
    const c = this.#mustFind(nameOrId);
    this.#markExited(c, exitCode);
  }

  /** The calls of one method. */
  callsTo(method: FakeMethod): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  /** The container by name or ID, or undefined (no side effects, no call logged). */
  peek(nameOrId: string): ContainerInspect | undefined {
    return this.#find(nameOrId)?.inspect;
  }

  /** Names of all containers, without the leading slash. */
  containerNames(): string[] {
    return [...this.containers.values()].map((c) => c.inspect.Name.slice(1)).sort();
  }

  // ---- DockerEngine ------------------------------------------------------------------------

  ping(): Promise<EngineVersion> {
    return this.#call(
      "ping",
      [],
      () => this.options.version ?? { apiVersion: "1.47", engineVersion: "27.0.0" },
    );
  }

  inspectContainer(nameOrId: string): Promise<ContainerInfo | null> {
    return this.#call("inspectContainer", [nameOrId], () => {
      const c = this.#find(nameOrId);
      if (!c) return null;
      this.#advance(c);
      return containerInfoFromInspect(structuredClone(c.inspect));
    });
  }

  createContainer(name: string, body: CreateContainerBody): Promise<string> {
    return this.#call(
      "createContainer",
      [name, structuredClone(body)],
      () => this.#create(name, body),
    );
  }

  renameContainer(id: string, newName: string): Promise<void> {
    return this.#call("renameContainer", [id, newName], () => {
      const c = this.#mustFind(id);
      const oldName = c.inspect.Name.slice(1);
      if (oldName === newName) {
        throw new DockerError("Renaming a container with the same name as its current name", {
          status: 400,
          object: id,
        });
      }
      const other = this.#byName(newName);
      if (other) throw conflict(newName, other.inspect.Id);
      c.inspect.Name = `/${newName}`;
    });
  }

  startContainer(id: string): Promise<void> {
    return this.#call("startContainer", [id], () => this.#start(id));
  }

  stopContainer(
    id: string,
    options: { timeoutSeconds?: number; signal?: string } = {},
  ): Promise<void> {
    return this.#call("stopContainer", [id, options], () => {
      const c = this.#mustFind(id);
      if (!c.inspect.State.Running && !c.inspect.State.Restarting) return;
      // Like the daemon: without options, the container's own StopSignal and StopTimeout.
      const signal = options.signal ?? c.inspect.Config.StopSignal ?? "SIGTERM";
      const timeoutSeconds = options.timeoutSeconds ?? c.inspect.Config.StopTimeout ?? 10;
      c.lastStop = { signal, timeoutSeconds };
      if (c.stopping !== undefined) {
        // A stop already in progress: this call waits for it to end.
        this.#endStop(c);
        return;
      }
      const lingers = this.#lookup(this.options.stopLingers, c);
      if (lingers !== undefined) {
        c.stopping = lingers;
        return new Promise<void>(() => {});
      }
      this.#endStop(c);
    });
  }

  /** Exposes how the last stop of a container was asked for (signal, timeout), for tests. */
  lastStopOf(nameOrId: string): { signal: string; timeoutSeconds: number } | undefined {
    return this.#find(nameOrId)?.lastStop;
  }

  removeContainer(id: string, options: { force?: boolean } = {}): Promise<void> {
    return this.#call("removeContainer", [id, options], () => {
      const c = this.#find(id);
      if (!c) return;
      const s = c.inspect.State;
      if ((s.Running || s.Restarting) && !options.force) {
        throw new DockerError(
          `You cannot remove a running container ${c.inspect.Id}. Stop the container before attempting removal or force remove`,
          { status: 409, object: id },
        );
      }
      this.containers.delete(c.inspect.Id);
    });
  }

  setRestartPolicy(id: string, policy: RestartPolicy): Promise<void> {
    return this.#call("setRestartPolicy", [id, policy], () => {
      const c = this.#mustFind(id);
      c.inspect.HostConfig.RestartPolicy = { ...policy };
    });
  }

  containerLogs(id: string, tail: number): Promise<string> {
    return this.#call("containerLogs", [id, tail], () => {
      const c = this.#mustFind(id);
      const lines = tail >= 0 ? c.logs.slice(-tail) : c.logs;
      return tail === 0 ? "" : lines.map((l) => `${l}\n`).join("");
    });
  }

  pullImage(ref: string, options: PullOptions = {}): Promise<void> {
    return this.#call("pullImage", [ref, { auth: options.auth ?? null }], () => {
      const normal = normalise(ref);
      const failure = typeof this.options.failPull === "string"
        ? this.options.failPull
        : this.options.failPull?.get(ref) ?? this.options.failPull?.get(normal);
      const parsed = parseImageRef(ref);
      const host = parsed.domain === "docker.io" ? "registry-1.docker.io" : parsed.domain;
      if (failure) throw pullError(failure, ref, host);
      const remote = this.registry.get(normal);
      if (!remote) throw pullError("not_found", ref, host);
      const progress = options.onProgress ?? (() => {});
      progress({ status: `Pulling from ${parsed.path}`, id: parsed.tag ?? "latest" });
      const existing = this.images.get(remote.id);
      if (!existing) {
        progress({ status: "Downloading", id: remote.id.slice(7, 19), current: 512, total: 1024 });
        progress({ status: "Pull complete", id: remote.id.slice(7, 19) });
      }
      progress({ status: `Digest: ${remote.digest}` });
      const image = existing ?? {
        id: remote.id,
        repoTags: [],
        repoDigests: [],
        created: this.#now(),
        config: structuredClone(remote.config),
      };
      this.images.set(image.id, image);
      const digestRef = `${familiarRepository(parsed)}@${remote.digest}`;
      if (!image.repoDigests.includes(digestRef)) image.repoDigests.push(digestRef);
      if (!parsed.digest) this.#tag(image, ref);
      progress({
        status: existing
          ? `Status: Image is up to date for ${ref}`
          : `Status: Downloaded newer image for ${ref}`,
      });
    });
  }

  inspectImage(refOrId: string): Promise<ImageInfo | null> {
    return this.#call("inspectImage", [refOrId], () => {
      const image = this.#findImage(refOrId);
      return image ? toImageInfo(image) : null;
    });
  }

  listImages(repository: string): Promise<ImageInfo[]> {
    return this.#call("listImages", [repository], () => {
      const repo = repositoryOf(parseImageRef(repository));
      return [...this.images.values()]
        .filter((image) =>
          [...image.repoTags, ...image.repoDigests].some((t) =>
            repositoryOf(parseImageRef(t)) === repo
          )
        )
        .sort((a, b) => b.created.localeCompare(a.created))
        .map(toImageInfo);
    });
  }

  removeImage(id: string): Promise<boolean> {
    return this.#call("removeImage", [id], () => {
      const image = this.#findImage(id);
      if (!image) return false;
      const byId = id === image.id || image.id.slice(7).startsWith(id.replace(/^sha256:/, ""));
      if (!byId && image.repoTags.length > 1) {
        // By reference, with other tags left: the daemon only untags.
        const tag = familiar(normalise(id));
        image.repoTags = image.repoTags.filter((t) => t !== tag);
        return true;
      }
      const inUse = [...this.containers.values()].some((c) => c.inspect.Image === image.id);
      // The daemon refuses (409) to delete by ID an image that several repositories reference.
      const repos = new Set(image.repoTags.map((t) => repositoryOf(parseImageRef(t))));
      if (inUse || (byId && repos.size > 1)) return false;
      this.images.delete(image.id);
      return true;
    });
  }

  tagImage(id: string, repository: string, tag: string): Promise<void> {
    return this.#call("tagImage", [id, repository, tag], () => {
      const image = this.#findImage(id);
      if (!image) throw new DockerError(`No such image: ${id}`, { status: 404, object: id });
      this.#tag(image, `${repository}:${tag}`);
    });
  }

  // ---- internals ---------------------------------------------------------------------------

  async #call<T>(method: FakeMethod, args: unknown[], body: () => T | Promise<T>): Promise<T> {
    this.calls.push({ method, args });
    // Real calls are asynchronous; let other tasks run between them.
    await Promise.resolve();
    if (this.options.unreachable) {
      throw new DockerError(`cannot reach the Docker daemon at ${SOCKET}`, {
        object: SOCKET,
        hint: "systemctl start docker",
      });
    }
    const next = this.#failNext.get(method);
    if (next) {
      if (--next.times <= 0) this.#failNext.delete(method);
      throw new DockerError(next.message, { status: next.status });
    }
    return await body();
  }

  #now(): string {
    if (this.options.now) return this.options.now().toISOString();
    this.#clock += 1000;
    return new Date(this.#clock).toISOString();
  }

  #find(nameOrId: string): FakeContainer | undefined {
    const byName = this.#byName(nameOrId.replace(/^\//, ""));
    if (byName) return byName;
    if (nameOrId.length === 0) return undefined;
    const matches = [...this.containers.values()].filter((c) => c.inspect.Id.startsWith(nameOrId));
    return matches.length === 1 ? matches[0] : undefined;
  }

  #mustFind(nameOrId: string): FakeContainer {
    const c = this.#find(nameOrId);
    if (!c) {
      throw new DockerError(`No such container: ${nameOrId}`, { status: 404, object: nameOrId });
    }
    return c;
  }

  #byName(name: string): FakeContainer | undefined {
    for (const c of this.containers.values()) if (c.inspect.Name === `/${name}`) return c;
    return undefined;
  }

  #findImage(refOrId: string): FakeImage | undefined {
    const bare = refOrId.replace(/^sha256:/, "");
    if (/^[0-9a-f]{12,64}$/.test(bare)) {
      for (const image of this.images.values()) {
        if (image.id.slice(7).startsWith(bare)) return image;
      }
    }
    let normal: string;
    try {
      normal = normalise(refOrId);
    } catch {
      return undefined;
    }
    for (const image of this.images.values()) {
      if ([...image.repoTags, ...image.repoDigests].some((t) => normalise(t) === normal)) {
        return image;
      }
    }
    return undefined;
  }

  #tag(image: FakeImage, ref: string): void {
    const tag = familiar(normalise(ref));
    for (const other of this.images.values()) {
      if (other !== image) other.repoTags = other.repoTags.filter((t) => t !== tag);
    }
    if (!image.repoTags.includes(tag)) image.repoTags.push(tag);
  }

  /** Matches an image-keyed option against a container. */
  #lookup<V>(map: Map<string, V> | undefined, c: FakeContainer): V | undefined {
    if (!map) return undefined;
    for (const key of imageKeys(c)) if (map.has(key)) return map.get(key);
    return undefined;
  }

  #matches(option: string | Iterable<string> | undefined, c: FakeContainer): boolean {
    if (option === undefined) return false;
    const set = new Set(typeof option === "string" ? [option] : option);
    return imageKeys(c).some((k) => set.has(k));
  }

  #create(name: string, body: CreateContainerBody): string {
    if (!/^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(name)) {
      throw new DockerError(
        `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
        {
          status: 400,
          object: name,
        },
      );
    }
    const imageRef = body.Image ?? "";
    const image = this.#findImage(imageRef);
    if (!image) {
      throw new DockerError(`No such image: ${imageRef}`, { status: 404, object: imageRef });
    }
    const existing = this.#byName(name);
    if (existing) throw conflict(name, existing.inspect.Id);

    const id = sha256(`container:${name}:${crypto.randomUUID()}`);
    const { HostConfig: hostConfigIn, NetworkingConfig, ...userConfig } = structuredClone(body);
    const config = mergeImageConfig(userConfig, image.config);
    config.Image = imageRef;
    config.Hostname ||= id.slice(0, 12);
    config.Domainname ??= "";
    const hostConfig = { ...structuredClone(hostConfigIn) };
    hostConfig.NetworkMode ||= "default";

    const networks: Record<string, EndpointSettings> = {};
    const endpoints = NetworkingConfig?.EndpointsConfig ?? {};
    const names = Object.keys(endpoints).length > 0
      ? Object.keys(endpoints)
      : [hostConfig.NetworkMode === "default" ? "bridge" : hostConfig.NetworkMode];
    for (const net of names) {
      if (net === "host" || net === "none" || net.startsWith("container:")) continue;
      const given = endpoints[net] ?? {};
      networks[net] = {
        IPAMConfig: given.IPAMConfig ?? null,
        Links: given.Links ?? null,
        Aliases: given.Aliases ?? null,
        NetworkID: this.#networkId(net),
        EndpointID: "",
        Gateway: "",
        IPAddress: "",
        MacAddress: given.MacAddress ?? "",
        DriverOpts: given.DriverOpts ?? null,
      };
    }

    const mounts = this.#mounts(config, hostConfig);
    const created = this.#now();
    const inspect: ContainerInspect = {
      Id: id,
      Created: created,
      Path: (config.Entrypoint ?? config.Cmd ?? [""])[0],
      Args: [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])].slice(1),
      State: {
        Status: "created",
        Running: false,
        Paused: false,
        Restarting: false,
        OOMKilled: false,
        Dead: false,
        ExitCode: 0,
        Error: "",
        StartedAt: STOPPED_AT,
        FinishedAt: STOPPED_AT,
      },
      Image: image.id,
      Name: `/${name.replace(/^\//, "")}`,
      RestartCount: 0,
      HostConfig: hostConfig,
      Mounts: mounts,
      Config: config,
      NetworkSettings: { Networks: networks, Ports: {} },
    };
    if (hasHealthcheck(config)) {
      inspect.State.Health = { Status: "starting", FailingStreak: 0, Log: [] };
    }
    const hostPorts = Object.keys(hostConfig.PortBindings ?? {}).flatMap((port) => {
      const bindings = (hostConfig.PortBindings as Record<
        string,
        { HostPort?: string; HostIp?: string }[] | null
      >)[
        port
      ] ?? [];
      return bindings.map((b) =>
        `${b.HostIp || "0.0.0.0"}:${b.HostPort || ""}/${port.split("/")[1] ?? "tcp"}`
      );
    });
    this.containers.set(id, { inspect, hostPorts, logs: [], healthStep: 0, stopped: false });
    return id;
  }

  #networkId(name: string): string {
    let id = this.#networkIds.get(name);
    if (!id) {
      id = sha256(`network:${name}`);
      this.#networkIds.set(name, id);
    }
    return id;
  }

  #mounts(config: ContainerConfig, hostConfig: CreateContainerBody["HostConfig"]): MountPoint[] {
    const out: MountPoint[] = [];
    const targets = new Set<string>();
    for (const bind of hostConfig.Binds ?? []) {
      const [source, target, mode = ""] = bind.split(":");
      targets.add(target);
      const ro = mode.split(",").includes("ro");
      if (source.startsWith("/")) {
        out.push({ Type: "bind", Source: source, Destination: target, Mode: mode, RW: !ro });
      } else {
        out.push({
          Type: "volume",
          Name: source,
          Source: `/var/lib/docker/volumes/${source}/_data`,
          Destination: target,
          Driver: "local",
          Mode: mode || "z",
          RW: !ro,
        });
      }
    }
    for (const m of hostConfig.Mounts ?? []) {
      targets.add(m.Target);
      const name = m.Type === "volume"
        ? (m.Source || sha256(`volume:${crypto.randomUUID()}`))
        : undefined;
      out.push({
        Type: m.Type,
        ...(name ? { Name: name, Driver: "local" } : {}),
        Source: name ? `/var/lib/docker/volumes/${name}/_data` : (m.Source ?? ""),
        Destination: m.Target,
        Mode: "",
        RW: !m.ReadOnly,
      });
    }
    for (const target of Object.keys(config.Volumes ?? {})) {
      if (targets.has(target)) continue;
      const name = sha256(`volume:${crypto.randomUUID()}`);
      out.push({
        Type: "volume",
        Name: name,
        Source: `/var/lib/docker/volumes/${name}/_data`,
        Destination: target,
        Driver: "local",
        Mode: "",
        RW: true,
      });
    }
    return out;
  }

  #start(id: string): void {
    const c = this.#mustFind(id);
    const s = c.inspect.State;
    if (s.Running) return;
    if (this.#matches(this.options.failStartOf, c)) {
      s.Status = "created";
      s.ExitCode = 127;
      s.Error = 'exec: "/app/start": stat /app/start: no such file or directory: unknown';
      throw new DockerError(
        `failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: ${s.Error}`,
        { status: 500, object: id },
      );
    }
    const wanted = c.hostPorts;
    const holder = [...this.containers.values()].find((o) =>
      o !== c && (o.inspect.State.Running || o.inspect.State.Restarting) &&
      o.hostPorts.some((p) => wanted.includes(p) && !p.includes(":/"))
    );
    if (holder || (wanted.length > 0 && this.#matches(this.options.portConflictFor, c))) {
      const port = wanted[0]?.replace(/\/.*$/, "") ?? "0.0.0.0:0";
      s.Error = `driver failed programming external connectivity on endpoint ${
        c.inspect.Name.slice(1)
      } (${c.inspect.Id}): Bind for ${port} failed: port is already allocated`;
      s.ExitCode = 128;
      throw new DockerError(s.Error, { status: 500, object: id });
    }
    s.Status = "running";
    s.Running = true;
    s.Restarting = false;
    s.ExitCode = 0;
    s.Error = "";
    s.StartedAt = this.#now();
    s.FinishedAt = STOPPED_AT;
    c.healthStep = 0;
    c.stopped = false;
    if (s.Health) s.Health = { Status: "starting", FailingStreak: 0, Log: [] };
    let ipIndex = 0;
    for (const ep of Object.values(c.inspect.NetworkSettings.Networks ?? {})) {
      ep.IPAddress = ep.IPAMConfig?.IPv4Address || `172.18.0.${this.#ipCounter++ + ipIndex++}`;
      ep.EndpointID = sha256(`endpoint:${id}:${ipIndex}`);
    }
    c.logs.push(...(this.#lookup(this.options.logsOf, c) ?? []));
    const exitCode = this.#lookup(this.options.exitAfterStart, c);
    if (exitCode !== undefined) this.#markExited(c, exitCode);
  }

  #endStop(c: FakeContainer): void {
    const signal = c.lastStop?.signal ?? "SIGTERM";
    const killed = signal === "SIGKILL" || signal === "KILL" || signal === "9" ||
      this.#matches(this.options.ignoresStopSignal, c);
    const code = killed ? 137 : (this.#lookup(this.options.exitCodeOnStop, c) ?? 0);
    c.stopping = undefined;
    c.stopped = true;
    this.#markExited(c, code);
  }

  #markExited(c: FakeContainer, exitCode: number): void {
    const s = c.inspect.State;
    s.Running = false;
    s.Restarting = false;
    s.Status = "exited";
    s.ExitCode = exitCode;
    s.FinishedAt = this.#now();
    const policy = c.inspect.HostConfig.RestartPolicy?.Name ?? "no";
    const restarts = policy === "always" || policy === "unless-stopped" ||
      (policy === "on-failure" && exitCode !== 0);
    if (restarts && !c.stopped) {
      // The daemon keeps restarting a container that exits under a restart policy (always and
      // unless-stopped after any exit, 0 too; on-failure after a non-zero one).
      s.Restarting = true;
      s.Status = "restarting";
    }
  }

  /** What time does between two inspects: restarts, health checks. */
  #advance(c: FakeContainer): void {
    const s = c.inspect.State;
    if (c.stopping !== undefined) {
      if (c.stopping-- <= 0) this.#endStop(c);
      return;
    }
    if (this.#matches(this.options.crashLoop, c) && !c.stopped && s.StartedAt !== STOPPED_AT) {
      c.inspect.RestartCount = (c.inspect.RestartCount ?? 0) + 1;
      s.Running = false;
      s.Restarting = true;
      s.Status = "restarting";
      s.ExitCode = s.ExitCode || 1;
      s.FinishedAt = this.#now();
      if (s.Health) s.Health.Status = "unhealthy";
      return;
    }
    if (s.Restarting) {
      c.inspect.RestartCount = (c.inspect.RestartCount ?? 0) + 1;
      return;
    }
    if (s.Running && s.Health) {
      const wanted = this.#lookup(this.options.healthOf, c) ?? "healthy";
      const seq = Array.isArray(wanted) ? wanted : [wanted];
      const status = seq[Math.min(c.healthStep, seq.length - 1)];
      c.healthStep++;
      s.Health.Status = status;
      s.Health.FailingStreak = status === "unhealthy" ? (s.Health.FailingStreak ?? 0) + 1 : 0;
    }
  }
}

// ---- pure helpers ----------------------------------------------------------------------------

/**
 * Merges an image's config into the config of a new container, as dockerd's `merge()` does:
 * Env by key (the container's win), Labels by key, ExposedPorts and Volumes united; User,
 * WorkingDir, StopSignal, Healthcheck fields from the image when not given; Cmd from the image
 * only when neither Cmd nor Entrypoint is given; Entrypoint from the image when not given.
 */
export function mergeImageConfig(user: ContainerConfig, image: ContainerConfig): ContainerConfig {
  const out: ContainerConfig = structuredClone(user);
  const img = structuredClone(image);
  out.User ||= img.User ?? "";
  if (img.ExposedPorts) out.ExposedPorts = { ...img.ExposedPorts, ...(out.ExposedPorts ?? {}) };
  if (!out.Env || out.Env.length === 0) {
    out.Env = img.Env ?? null;
  } else {
    const keys = new Set(out.Env.map((e) => e.split("=")[0]));
    for (const e of img.Env ?? []) if (!keys.has(e.split("=")[0])) out.Env.push(e);
  }
  if (img.Labels) out.Labels = { ...img.Labels, ...(out.Labels ?? {}) };
  if (!out.Entrypoint || out.Entrypoint.length === 0) {
    if (!out.Cmd || out.Cmd.length === 0) out.Cmd = img.Cmd ?? null;
    if (out.Entrypoint === undefined || out.Entrypoint === null) {
      out.Entrypoint = img.Entrypoint ?? null;
    }
  }
  if (img.Healthcheck) {
    if (!out.Healthcheck) {
      out.Healthcheck = img.Healthcheck;
    } else {
      const h = out.Healthcheck;
      if (!h.Test || h.Test.length === 0) h.Test = img.Healthcheck.Test;
      h.Interval ||= img.Healthcheck.Interval;
      h.Timeout ||= img.Healthcheck.Timeout;
      h.StartPeriod ||= img.Healthcheck.StartPeriod;
      h.StartInterval ||= img.Healthcheck.StartInterval;
      h.Retries ||= img.Healthcheck.Retries;
    }
  }
  out.WorkingDir ||= img.WorkingDir ?? "";
  if (img.Volumes && Object.keys(img.Volumes).length > 0) {
    out.Volumes = { ...img.Volumes, ...(out.Volumes ?? {}) };
  }
  out.StopSignal ||= img.StopSignal;
  if (out.StopSignal === undefined) delete out.StopSignal;
  out.Labels ??= {};
  return out;
}

function hasHealthcheck(config: ContainerConfig): boolean {
  const test = config.Healthcheck?.Test;
  return !!test && test.length > 0 && test[0] !== "NONE";
}

function imageKeys(c: FakeContainer): string[] {
  const ref = c.inspect.Config.Image ?? "";
  const keys = [ref, c.inspect.Image];
  try {
    keys.push(normalise(ref), familiar(normalise(ref)));
  } catch {
    // An image ID is not a reference.
  }
  return keys;
}

/** `registry/org/app:tag` (tag latest when none), or with `@digest`. */
function normalise(ref: string): string {
  const parsed = parseImageRef(ref);
  const base = repositoryOf(parsed);
  if (parsed.digest) return `${base}@${parsed.digest}`;
  return `${base}:${parsed.tag ?? "latest"}`;
}

/** The form Docker prints in RepoTags: `app:1`, `registry:5000/org/app:1`. */
function familiar(normal: string): string {
  return formatImageRef(parseImageRef(normal)).replace(/:latest@/, "@");
}

function imageId(normal: string, config: ContainerConfig): string {
  return "sha256:" + sha256(`image:${normal}:${JSON.stringify(config)}`);
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function toImageInfo(image: FakeImage): ImageInfo {
  return imageInfoFromInspect({
    Id: image.id,
    RepoTags: [...image.repoTags],
    RepoDigests: [...image.repoDigests],
    Created: image.created,
    Config: structuredClone(image.config),
  });
}

function conflict(name: string, id: string): DockerError {
  return new DockerError(
    `Conflict. The container name "/${name}" is already in use by container "${id}". You have to remove (or rename) that container to be able to reuse that name.`,
    { status: 409, object: name },
  );
}

function pullError(failure: PullFailure, ref: string, host: string): DockerError {
  const parsed = parseImageRef(ref);
  const what = parsed.digest ?? parsed.tag ?? "latest";
  switch (failure) {
    case "not_found":
      return new DockerError(`manifest for ${ref} not found: manifest unknown: manifest unknown`, {
        status: 404,
        object: ref,
      });
    case "unauthorized":
      return new DockerError(
        `Head "https://${host}/v2/${parsed.path}/manifests/${what}": no basic auth credentials`,
        { status: 500, object: ref, hint: "docker login " + host },
      );
    case "unreachable":
      return new DockerError(
        `Get "https://${host}/v2/": dial tcp: lookup ${host}: no such host`,
        { status: 500, object: ref },
      );
    case "disk_full":
      return new DockerError(
        `failed to register layer: write /var/lib/docker/overlay2/l/x: no space left on device`,
        { object: ref },
      );
  }
}
