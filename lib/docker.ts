/**
 * What the update engine needs from Docker, as small interfaces in domain terms.
 * `SocketDockerEngine` (lib/adapters/docker_engine.ts) implements them over the Engine API;
 * `FakeDockerEngine` (test/fakes/docker.ts) holds containers and images in maps.
 */

/** The raw `GET /containers/{id}/json` answer. Only the fields we read are typed. */
export interface ContainerInspect {
  Id: string;
  Name: string;
  Image: string;
  Created?: string;
  RestartCount?: number;
  State: {
    Status: string;
    Running: boolean;
    Restarting: boolean;
    Paused?: boolean;
    OOMKilled?: boolean;
    Dead?: boolean;
    ExitCode: number;
    Error?: string;
    StartedAt: string;
    FinishedAt: string;
    Health?: { Status: string; FailingStreak?: number; Log?: unknown[] };
  };
  Config: ContainerConfig;
  HostConfig: HostConfig;
  NetworkSettings: { Networks?: Record<string, EndpointSettings> | null; [k: string]: unknown };
  Mounts?: MountPoint[];
  [k: string]: unknown;
}

export interface ContainerConfig {
  Hostname?: string;
  Domainname?: string;
  User?: string;
  Env?: string[] | null;
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  Image?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, unknown> | null;
  Volumes?: Record<string, unknown> | null;
  WorkingDir?: string;
  StopSignal?: string;
  StopTimeout?: number | null;
  Healthcheck?: Healthcheck | null;
  [k: string]: unknown;
}

export interface Healthcheck {
  Test?: string[] | null;
  Interval?: number;
  Timeout?: number;
  Retries?: number;
  StartPeriod?: number;
  StartInterval?: number;
}

export interface RestartPolicy {
  Name: string;
  MaximumRetryCount?: number;
}

export interface HostConfig {
  Binds?: string[] | null;
  Mounts?: MountSpec[] | null;
  NetworkMode?: string;
  PortBindings?: Record<string, unknown> | null;
  RestartPolicy?: RestartPolicy;
  AutoRemove?: boolean;
  Links?: string[] | null;
  [k: string]: unknown;
}

export interface MountSpec {
  Type: "bind" | "volume" | "tmpfs" | "npipe" | "cluster" | string;
  Source?: string;
  Target: string;
  ReadOnly?: boolean;
  [k: string]: unknown;
}

export interface MountPoint {
  Type: string;
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode?: string;
  RW: boolean;
}

export interface EndpointSettings {
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] } | null;
  Links?: string[] | null;
  Aliases?: string[] | null;
  NetworkID?: string;
  MacAddress?: string;
  DriverOpts?: Record<string, string> | null;
  [k: string]: unknown;
}

/** Body of `POST /containers/create`. `NetworkingConfig.EndpointsConfig` may name several networks. */
export interface CreateContainerBody extends ContainerConfig {
  HostConfig: HostConfig;
  NetworkingConfig: { EndpointsConfig: Record<string, EndpointSettings> };
}

export interface ContainerInfo {
  id: string;
  /** Without the leading slash. */
  name: string;
  /** The reference the container was created from (`Config.Image`). */
  imageRef: string;
  /** The image ID it runs (`sha256:…`). */
  imageId: string;
  running: boolean;
  restarting: boolean;
  status: string;
  exitCode: number;
  restartCount: number;
  /** `healthy`, `unhealthy`, `starting`, or null without a HEALTHCHECK. */
  health: string | null;
  startedAt: string;
  labels: Record<string, string>;
  inspect: ContainerInspect;
}

export interface ImageInfo {
  /** `sha256:…` */
  id: string;
  repoTags: string[];
  repoDigests: string[];
  created: string;
  config: ContainerConfig;
}

export interface RegistryAuth {
  username?: string;
  password?: string;
  identitytoken?: string;
  serveraddress: string;
}

export interface PullProgress {
  status: string;
  id?: string;
  current?: number;
  total?: number;
}

export interface PullOptions {
  auth?: RegistryAuth | null;
  onProgress?: (progress: PullProgress) => void;
}

export interface EngineVersion {
  /** The API version we talk, after negotiation. */
  apiVersion: string;
  engineVersion: string;
}

/** Containers, as the update needs them. Every method throws DockerError when the daemon fails. */
export interface Containers {
  /** Returns null when no container has that name or ID. */
  inspectContainer(nameOrId: string): Promise<ContainerInfo | null>;
  /** Creates (does not start) a container, attaching every network in the body. Returns its ID. */
  createContainer(name: string, body: CreateContainerBody): Promise<string>;
  renameContainer(id: string, newName: string): Promise<void>;
  startContainer(id: string): Promise<void>;
  /** Stops with the given signal (default: the container's) and waits up to timeoutSeconds before SIGKILL. */
  stopContainer(id: string, options?: { timeoutSeconds?: number; signal?: string }): Promise<void>;
  /** Removes the container, never its volumes. `force` kills it first if running. No error if absent. */
  removeContainer(id: string, options?: { force?: boolean }): Promise<void>;
  /**
   * Changes the restart policy of an existing container (running or not). The update sets the
   * old container's to "no" while it is stopped, so a daemon restart cannot bring it back
   * beside the new one.
   */
  setRestartPolicy(id: string, policy: RestartPolicy): Promise<void>;
  /** The last `tail` lines of stdout and stderr, as text. */
  containerLogs(id: string, tail: number): Promise<string>;
}

/** Images, as the update needs them. Every method throws DockerError when the daemon fails. */
export interface Images {
  /** Pulls and reads the stream to its end; throws DockerError on an error line. */
  pullImage(ref: string, options?: PullOptions): Promise<void>;
  /** Returns null when no such image is present locally. */
  inspectImage(refOrId: string): Promise<ImageInfo | null>;
  /** Images whose repository (fully qualified or as Docker prints it) is `repository`. */
  listImages(repository: string): Promise<ImageInfo[]>;
  /** Removes an image by ID without force. Returns false when it is in use or absent. */
  removeImage(id: string): Promise<boolean>;
  /** Tags an image: `tagImage(id, "registry/org/app", "1.2")`. */
  tagImage(id: string, repository: string, tag: string): Promise<void>;
}

export interface DockerEngine extends Containers, Images {
  /** Checks the daemon and negotiates the API version. Throws DockerError when unreachable. */
  ping(): Promise<EngineVersion>;
}

/** Looks up registry credentials the way `docker login` stored them. */
export interface CredentialStore {
  /** Returns null when there are no credentials for that registry host. */
  lookup(registryHost: string): Promise<RegistryAuth | null>;
  /** The Docker config file it reads (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`). */
  readonly configFile?: string;
}
