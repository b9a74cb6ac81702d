/**
 * `SocketDockerEngine`: the Docker Engine API over the daemon's unix socket, with Deno's
 * fetch and an HTTP client whose transport is the socket.
 *
 * The API version is negotiated once, lazily, before the first request: the lower of the
 * daemon's version and MAX_API_VERSION. That speaks to Engine 20.10 (API 1.41) as well as to
 * Docker 29, which refuses anything below 1.44.
 */

import { DockerError, errorText } from "../errors.ts";
import { familiarRepository, parseImageRef, repositoryOf } from "../image_ref.ts";
import type {
  ContainerConfig,
  ContainerInfo,
  ContainerInspect,
  CreateContainerBody,
  DockerEngine,
  EndpointSettings,
  EngineVersion,
  ImageInfo,
  PullOptions,
  PullProgress,
  RegistryAuth,
  RestartPolicy,
} from "../docker.ts";

/** The newest Engine API version this adapter was written against. */
export const MAX_API_VERSION = "1.47";
/** From this version on, the daemon attaches every network given at create. */
const MULTI_NETWORK_CREATE_VERSION = "1.44";
/** From this version on, `POST /containers/{id}/stop` takes a signal. */
const STOP_SIGNAL_VERSION = "1.42";

export interface SocketDockerEngineOptions {
  /** Default `/var/run/docker.sock`. */
  socketPath?: string;
  /** Upper bound of the negotiated version; default MAX_API_VERSION. */
  maxApiVersion?: string;
  /** Timeout of an ordinary request in milliseconds; default 60 000. Pulls have none. */
  requestTimeoutMs?: number;
  /**
   * A pull has no overall deadline (a large image on a slow link takes what it takes), but one
   * that sends nothing for this long is stalled (a registry that stopped answering) and is
   * stopped, so the update fails instead of hanging the watcher. Default 300 000 (5 minutes).
   */
  pullStallMs?: number;
}

interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  /** null: no timeout. */
  timeoutMs?: number | null;
  /** Aborts the request (used for the pull's stall deadline). */
  signal?: AbortSignal;
  /** What the request is about, for error messages. */
  object?: string;
}

/** `SocketDockerEngine({ socketPath: "/var/run/docker.sock" })`; call `close()` when done. */
export class SocketDockerEngine implements DockerEngine {
  readonly socketPath: string;
  readonly #maxApiVersion: string;
  readonly #timeoutMs: number;
  readonly #pullStallMs: number;
  #client: Deno.HttpClient | null = null;
  #version: Promise<EngineVersion> | null = null;

  constructor(options: SocketDockerEngineOptions = {}) {
    this.socketPath = options.socketPath ?? "/var/run/docker.sock";
    this.#maxApiVersion = options.maxApiVersion ?? MAX_API_VERSION;
    this.#timeoutMs = options.requestTimeoutMs ?? 60_000;
    this.#pullStallMs = options.pullStallMs ?? 300_000;
  }

  /** Releases the HTTP client. The engine may not be used afterwards. */
  close(): void {
    this.#client?.close();
    this.#client = null;
  }

  /**
   * Checks the daemon and negotiates the API version: the lower of the daemon's and
   * MAX_API_VERSION. Throws DockerError when the daemon is unreachable or only speaks
   * versions newer than MAX_API_VERSION.
   */
  ping(): Promise<EngineVersion> {
    const attempt = this.#negotiate();
    this.#version = attempt;
    // A failed ping must not stick: the next request tries again.
    attempt.catch(() => {
      if (this.#version === attempt) this.#version = null;
    });
    return attempt;
  }

  async #negotiate(): Promise<EngineVersion> {
    const pong = await this.#fetch("GET", "/_ping", { timeoutMs: 10_000 });
    await pong.body?.cancel();
    const headerVersion = pong.headers.get("api-version");
    const res = await this.#fetch("GET", "/version", { timeoutMs: 10_000 });
    const v = await res.json() as { ApiVersion?: string; MinAPIVersion?: string; Version?: string };
    const daemonVersion = v.ApiVersion ?? headerVersion ?? "1.24";
    if (v.MinAPIVersion && compareVersions(v.MinAPIVersion, this.#maxApiVersion) > 0) {
      throw new DockerError(
        `the Docker daemon requires API version ${v.MinAPIVersion} or newer; hyperbot-ops speaks up to ${this.#maxApiVersion}`,
        {
          object: this.socketPath,
          hint: "upgrade hyperbot-ops to a release that supports this Docker version",
        },
      );
    }
    const apiVersion = compareVersions(daemonVersion, this.#maxApiVersion) < 0
      ? daemonVersion
      : this.#maxApiVersion;
    return { apiVersion, engineVersion: v.Version ?? "unknown" };
  }

  async #api(): Promise<string> {
    return (await (this.#version ?? this.ping())).apiVersion;
  }

  // ---- containers --------------------------------------------------------------------------

  async inspectContainer(nameOrId: string): Promise<ContainerInfo | null> {
    const res = await this.#request("GET", `/containers/${enc(nameOrId)}/json`, {
      object: nameOrId,
    }, [404]);
    if (res.status === 404) return null;
    return containerInfoFromInspect(await res.json() as ContainerInspect);
  }

  async createContainer(name: string, body: CreateContainerBody): Promise<string> {
    const api = await this.#api();
    const endpoints = body.NetworkingConfig?.EndpointsConfig ?? {};
    const names = Object.keys(endpoints);
    let sent: CreateContainerBody = body;
    let later: [string, EndpointSettings][] = [];
    if (compareVersions(api, MULTI_NETWORK_CREATE_VERSION) < 0 && names.length > 1) {
      // Before API 1.44 the daemon refuses more than one endpoint at create: attach the
      // primary network (NetworkMode) then, and connect the others before anyone starts it.
      const mode = body.HostConfig?.NetworkMode ?? "";
      const primary = names.includes(mode)
        ? mode
        : (mode === "" || mode === "default") && names.includes("bridge")
        ? "bridge"
        : names[0];
      const hostConfig = { ...body.HostConfig };
      if (mode === "" || mode === "default") hostConfig.NetworkMode = primary;
      sent = {
        ...body,
        HostConfig: hostConfig,
        NetworkingConfig: { EndpointsConfig: { [primary]: endpoints[primary] } },
      };
      later = names.filter((n) => n !== primary).map((n) => [n, endpoints[n]]);
    }
    const res = await this.#request("POST", "/containers/create", {
      query: { name },
      body: sent,
      object: name,
    });
    const { Id: id } = await res.json() as { Id: string };
    try {
      for (const [network, endpoint] of later) {
        const config = endpointConfig(endpoint);
        const r = await this.#request("POST", `/networks/${enc(network)}/connect`, {
          body: { Container: id, EndpointConfig: config },
          object: network,
        });
        await r.body?.cancel();
      }
    } catch (err) {
      // Half-attached containers would start with the wrong networks: undo the create.
      await this.removeContainer(id, { force: true }).catch(() => {});
      throw err;
    }
    return id;
  }

  async renameContainer(id: string, newName: string): Promise<void> {
    const res = await this.#request("POST", `/containers/${enc(id)}/rename`, {
      query: { name: newName },
      object: id,
    });
    await res.body?.cancel();
  }

  async startContainer(id: string): Promise<void> {
    // 304: already running.
    const res = await this.#request("POST", `/containers/${enc(id)}/start`, { object: id }, [304]);
    await res.body?.cancel();
  }

  async stopContainer(
    id: string,
    options: { timeoutSeconds?: number; signal?: string } = {},
  ): Promise<void> {
    const api = await this.#api();
    let timeout = options.timeoutSeconds;
    if (timeout === undefined) {
      const info = await this.inspectContainer(id);
      if (!info) throw new DockerError(`No such container: ${id}`, { status: 404, object: id });
      timeout = info.inspect.Config.StopTimeout ?? 10;
    }
    const timeoutMs = (timeout + 30) * 1000;
    if (options.signal && compareVersions(api, STOP_SIGNAL_VERSION) < 0) {
      // API < 1.42 has no signal on stop: send it, wait, then kill.
      const kill = await this.#request("POST", `/containers/${enc(id)}/kill`, {
        query: { signal: options.signal },
        object: id,
      }, [409]);
      await kill.body?.cancel();
      if (kill.status === 409) return; // not running
      const stopped = await this.#waitNotRunning(id, timeout * 1000);
      if (!stopped) {
        const k = await this.#request("POST", `/containers/${enc(id)}/kill`, {
          query: { signal: "KILL" },
          object: id,
        }, [409]);
        await k.body?.cancel();
        await this.#waitNotRunning(id, 30_000);
      }
      return;
    }
    // 304: already stopped.
    const res = await this.#request("POST", `/containers/${enc(id)}/stop`, {
      query: { t: timeout, signal: options.signal },
      timeoutMs,
      object: id,
    }, [304]);
    await res.body?.cancel();
  }

  /** Waits until the container no longer runs; false when it still runs after timeoutMs. */
  async #waitNotRunning(id: string, timeoutMs: number): Promise<boolean> {
    try {
      const res = await this.#request("POST", `/containers/${enc(id)}/wait`, {
        query: { condition: "not-running" },
        timeoutMs,
        object: id,
      }, [404]);
      await res.body?.cancel();
      return true;
    } catch (err) {
      if (
        err instanceof DockerError && err.status === undefined && /did not answer/.test(err.message)
      ) return false;
      throw err;
    }
  }

  async removeContainer(id: string, options: { force?: boolean } = {}): Promise<void> {
    const res = await this.#request("DELETE", `/containers/${enc(id)}`, {
      query: { v: false, force: options.force ?? false },
      object: id,
    }, [404]);
    await res.body?.cancel();
  }

  async setRestartPolicy(id: string, policy: RestartPolicy): Promise<void> {
    const res = await this.#request("POST", `/containers/${enc(id)}/update`, {
      body: { RestartPolicy: policy },
      object: id,
    });
    await res.body?.cancel();
  }

  async containerLogs(id: string, tail: number): Promise<string> {
    const info = await this.inspectContainer(id);
    if (!info) throw new DockerError(`No such container: ${id}`, { status: 404, object: id });
    const res = await this.#request("GET", `/containers/${enc(id)}/logs`, {
      query: { stdout: true, stderr: true, tail: tail < 0 ? "all" : tail },
      object: id,
    });
    const bytes = new Uint8Array(await res.arrayBuffer());
    return info.inspect.Config.Tty ? new TextDecoder().decode(bytes) : demultiplexLogs(bytes);
  }

  // ---- images ------------------------------------------------------------------------------

  async pullImage(ref: string, options: PullOptions = {}): Promise<void> {
    try {
      await this.#pull(ref, options);
    } catch (err) {
      // The registry's answer reaches us through the daemon's message, and a registry (or a
      // proxy) may echo the Authorization it got: the error goes to the status file the bot
      // reads, so the credentials sent are cut out of it, wherever and however encoded.
      throw options.auth ? redactError(err, secretsOf(options.auth)) : err;
    }
  }

  async #pull(ref: string, options: PullOptions): Promise<void> {
    const parsed = parseImageRef(ref);
    const headers: Record<string, string> = {};
    if (options.auth) headers["X-Registry-Auth"] = encodeRegistryAuth(options.auth);
    // Negotiation has its own timeouts; the stall deadline is the pull's alone.
    await this.#api();
    const stall = new StallDeadline(this.#pullStallMs);
    try {
      let res: Response;
      try {
        res = await this.#request("POST", "/images/create", {
          query: {
            fromImage: familiarRepository(parsed),
            tag: parsed.digest ?? parsed.tag ?? "latest",
          },
          headers,
          timeoutMs: null,
          signal: stall.signal,
          object: ref,
        });
      } catch (err) {
        // Errors found before the stream starts (manifest unknown, denied) come as a status.
        if (err instanceof DockerError && err.status !== undefined && !err.hint) {
          throw new DockerError(err.message, {
            status: err.status,
            object: ref,
            hint: pullHint(err.message),
            cause: err,
          });
        }
        throw err;
      }
      await readPullStream(res, ref, options.onProgress, () => stall.touch());
    } catch (err) {
      if (!stall.fired) throw err;
      // Closing the connection makes the daemon cancel the pull.
      throw new DockerError(
        `the pull made no progress for ${this.#pullStallMs / 1000} s and was stopped`,
        {
          object: ref,
          hint: "check that this host reaches the registry (the bot was not touched)",
        },
      );
    } finally {
      stall.clear();
    }
  }

  async inspectImage(refOrId: string): Promise<ImageInfo | null> {
    const res = await this.#request("GET", `/images/${enc(refOrId)}/json`, { object: refOrId }, [
      404,
    ]);
    if (res.status === 404) return null;
    return imageInfoFromInspect(await res.json() as ImageInspect);
  }

  async listImages(repository: string): Promise<ImageInfo[]> {
    const parsed = parseImageRef(repository);
    const repo = repositoryOf(parsed);
    const res = await this.#request("GET", "/images/json", {
      query: { filters: JSON.stringify({ reference: { [familiarRepository(parsed)]: true } }) },
      object: repository,
    });
    const summaries = await res.json() as { Id: string; Created: number }[];
    const out: ImageInfo[] = [];
    for (const summary of summaries) {
      const image = await this.inspectImage(summary.Id);
      if (!image) continue; // removed meanwhile
      const names = [...image.repoTags, ...image.repoDigests];
      if (names.some((n) => repositoryOf(parseImageRef(n)) === repo)) out.push(image);
    }
    return out.sort((a, b) => b.created.localeCompare(a.created));
  }

  async removeImage(id: string): Promise<boolean> {
    const res = await this.#request("DELETE", `/images/${enc(id)}`, {
      query: { force: false },
      object: id,
    }, [
      404,
      409,
    ]);
    await res.body?.cancel();
    return res.ok;
  }

  async tagImage(id: string, repository: string, tag: string): Promise<void> {
    const res = await this.#request("POST", `/images/${enc(id)}/tag`, {
      query: { repo: repository, tag },
      object: id,
    });
    await res.body?.cancel();
  }

  // ---- HTTP --------------------------------------------------------------------------------

  /** A versioned request; throws DockerError on a status outside 2xx and `accept`. */
  async #request(
    method: string,
    path: string,
    options: RequestOptions = {},
    accept: number[] = [],
  ): Promise<Response> {
    const api = await this.#api();
    const res = await this.#fetch(method, `/v${api}${path}`, options);
    if (res.ok || accept.includes(res.status)) return res;
    throw await errorFromResponse(res, options.object);
  }

  async #fetch(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    this.#client ??= Deno.createHttpClient({ proxy: { transport: "unix", path: this.socketPath } });
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(options.query ?? {})) {
      if (v !== undefined) params.set(k, String(v));
    }
    const query = params.size ? `?${params}` : "";
    const headers: Record<string, string> = { ...options.headers };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const timeoutMs = options.timeoutMs === undefined ? this.#timeoutMs : options.timeoutMs;
    try {
      const res = await fetch(`http://docker${path}${query}`, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        client: this.#client,
        signal: anySignal(
          options.signal,
          timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs),
        ),
      });
      if (path === "/_ping" && !res.ok) throw await errorFromResponse(res, this.socketPath);
      return res;
    } catch (err) {
      if (err instanceof DockerError) throw err;
      if (
        err instanceof DOMException && (err.name === "TimeoutError" || err.name === "AbortError")
      ) {
        throw new DockerError(
          `the Docker daemon did not answer ${method} ${path} within ${timeoutMs! / 1000} s`,
          {
            object: options.object ?? this.socketPath,
            cause: err,
          },
        );
      }
      const why = String((err as Error)?.cause ?? err);
      throw new DockerError(`cannot reach the Docker daemon at ${this.socketPath}`, {
        object: this.socketPath,
        cause: err,
        hint: /permission denied/i.test(why)
          ? "run as root or as a member of the docker group"
          : "systemctl start docker",
      });
    }
  }
}

// ---- pure helpers ----------------------------------------------------------------------------

/** Compares dotted versions: negative when a < b. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The strings that give the credentials away: the secrets and their usual encodings. */
export function secretsOf(auth: RegistryAuth): string[] {
  const b64 = (text: string) => {
    let binary = "";
    for (const b of new TextEncoder().encode(text)) binary += String.fromCharCode(b);
    return btoa(binary);
  };
  const header = encodeRegistryAuth(auth);
  const out = [header, header.replace(/=+$/, ""), header.replaceAll("-", "+").replaceAll("_", "/")];
  for (const secret of [auth.password, auth.identitytoken]) {
    if (secret) out.push(secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1));
  }
  if (auth.password) {
    const basic = b64(`${auth.username ?? ""}:${auth.password}`);
    out.push(basic, basic.replace(/=+$/, ""));
  }
  // Very short strings would cut ordinary words out of messages; they protect nothing anyway.
  return [...new Set(out)].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
}

/** `text` with each secret, and any `Basic …`/`Bearer …` credential, replaced by `[redacted]`. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) out = out.replaceAll(secret, "[redacted]");
  return out.replace(/\b(Basic|Bearer)\s+[A-Za-z0-9._~+/=-]{6,}/gi, "$1 [redacted]");
}

/**
 * The error with its message and hint redacted, and without its cause (the cause chain is
 * rendered too, and may quote the same answer unredacted).
 */
function redactError(err: unknown, secrets: readonly string[]): unknown {
  if (!(err instanceof Error)) return err;
  const text = errorText(err);
  if (!(err instanceof DockerError) && redactSecrets(text, secrets) === text) return err;
  const cause = err.cause;
  const why = cause instanceof Error && !err.message.includes(cause.message)
    ? `: ${errorText(cause)}`
    : "";
  const message = redactSecrets(`${err.message}${why}`, secrets);
  if (err instanceof DockerError) {
    return new DockerError(message, {
      status: err.status,
      object: err.object === undefined ? undefined : redactSecrets(err.object, secrets),
      hint: err.hint === undefined ? undefined : redactSecrets(err.hint, secrets),
    });
  }
  return new DockerError(message, {});
}

/** The `X-Registry-Auth` header: base64url of the JSON auth config. */
export function encodeRegistryAuth(auth: RegistryAuth): string {
  const json = JSON.stringify(
    auth.identitytoken
      ? { identitytoken: auth.identitytoken, serveraddress: auth.serveraddress }
      : {
        username: auth.username ?? "",
        password: auth.password ?? "",
        serveraddress: auth.serveraddress,
      },
  );
  const bytes = new TextEncoder().encode(json);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  // Padded: Engine 20.10 decodes with Go's base64.URLEncoding, which requires the padding.
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_");
}

/**
 * Splits a non-TTY log stream: frames of an 8-byte header (stream type, 3 zero bytes, big-endian
 * length) and the payload. stdout and stderr come back interleaved in their order.
 */
export function demultiplexLogs(bytes: Uint8Array): string {
  const decoder = new TextDecoder();
  const parts: Uint8Array[] = [];
  let i = 0;
  while (i + 8 <= bytes.length) {
    const size = new DataView(bytes.buffer, bytes.byteOffset + i + 4, 4).getUint32(0);
    parts.push(bytes.subarray(i + 8, Math.min(bytes.length, i + 8 + size)));
    i += 8 + size;
  }
  const total = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    total.set(p, at);
    at += p.length;
  }
  return decoder.decode(total);
}

/** The fields of an endpoint the daemon accepts when connecting a network. */
function endpointConfig(endpoint: EndpointSettings | undefined): EndpointSettings {
  const e = endpoint ?? {};
  const out: EndpointSettings = {};
  if (e.IPAMConfig) out.IPAMConfig = e.IPAMConfig;
  if (e.Links) out.Links = e.Links;
  if (e.Aliases) out.Aliases = e.Aliases;
  if (e.MacAddress) out.MacAddress = e.MacAddress;
  if (e.DriverOpts) out.DriverOpts = e.DriverOpts;
  return out;
}

/** Aborts when `touch` has not been called for `ms`: a deadline on silence, not on the total. */
class StallDeadline {
  readonly #controller = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  fired = false;

  constructor(private readonly ms: number) {
    this.touch();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  touch(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.fired = true;
      this.#controller.abort(new DOMException("stalled", "TimeoutError"));
    }, this.ms);
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

function anySignal(...signals: (AbortSignal | undefined)[]): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  return present.length <= 1 ? present[0] : AbortSignal.any(present);
}

/** Reads a pull's JSON-lines stream to its end. Throws DockerError on an error line. */
async function readPullStream(
  res: Response,
  ref: string,
  onProgress?: (progress: PullProgress) => void,
  onData?: () => void,
): Promise<void> {
  if (!res.body) return;
  const decoder = new TextDecoder();
  let buffered = "";
  const handle = (line: string) => {
    if (!line.trim()) return;
    let msg: {
      status?: string;
      id?: string;
      progressDetail?: { current?: number; total?: number };
      error?: string;
      errorDetail?: { message?: string };
    };
    try {
      msg = JSON.parse(line);
    } catch {
      return; // Not JSON: nothing we can report.
    }
    if (msg.error || msg.errorDetail) {
      const message = msg.errorDetail?.message || msg.error || "pull failed";
      throw new DockerError(message.trim(), { object: ref, hint: pullHint(message) });
    }
    if (onProgress && msg.status) {
      const p: PullProgress = { status: msg.status };
      if (msg.id) p.id = msg.id;
      if (msg.progressDetail?.current !== undefined) p.current = msg.progressDetail.current;
      if (msg.progressDetail?.total !== undefined) p.total = msg.progressDetail.total;
      onProgress(p);
    }
  };
  for await (const chunk of res.body) {
    onData?.();
    buffered += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      handle(line);
    }
  }
  handle(buffered + decoder.decode());
}

function pullHint(message: string): string | undefined {
  if (/no space left on device/i.test(message)) return "free disk space: docker image prune";
  if (/unauthorized|authentication required|no basic auth|denied/i.test(message)) {
    return "log in to the registry with docker login";
  }
  if (/manifest unknown|not found/i.test(message)) return "check the image name and tag";
  return undefined;
}

async function errorFromResponse(res: Response, object?: string): Promise<DockerError> {
  const text = await res.text().catch(() => "");
  let message = text.trim();
  try {
    const parsed = JSON.parse(text) as { message?: string };
    if (parsed.message) message = parsed.message;
  } catch {
    // Plain text answer.
  }
  if (!message) message = `the Docker daemon answered ${res.status} ${res.statusText}`;
  return new DockerError(message, {
    status: res.status,
    object,
    hint: res.status === 400 && /client version .* too (old|new)/i.test(message)
      ? "the API version negotiation failed; report this with `docker version`"
      : undefined,
  });
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

/** Turns a `GET /containers/{id}/json` answer into the domain view. Pure; the fake uses it too. */
export function containerInfoFromInspect(inspect: ContainerInspect): ContainerInfo {
  return {
    id: inspect.Id,
    name: inspect.Name.replace(/^\//, ""),
    imageRef: inspect.Config?.Image ?? "",
    imageId: inspect.Image,
    running: inspect.State.Running,
    restarting: inspect.State.Restarting,
    status: inspect.State.Status,
    exitCode: inspect.State.ExitCode,
    restartCount: inspect.RestartCount ?? 0,
    health: inspect.State.Health?.Status ?? null,
    startedAt: inspect.State.StartedAt,
    labels: inspect.Config?.Labels ?? {},
    inspect,
  };
}

/** The raw `GET /images/{name}/json` answer, only the fields we read. */
export interface ImageInspect {
  Id: string;
  RepoTags?: string[] | null;
  RepoDigests?: string[] | null;
  Created?: string;
  Config?: ContainerConfig | null;
  [k: string]: unknown;
}

/** Turns a `GET /images/{name}/json` answer into the domain view. Pure; the fake uses it too. */
export function imageInfoFromInspect(inspect: ImageInspect): ImageInfo {
  return {
    id: inspect.Id,
    repoTags: (inspect.RepoTags ?? []).filter((t) => t !== "<none>:<none>"),
    repoDigests: (inspect.RepoDigests ?? []).filter((d) => d !== "<none>@<none>"),
    created: inspect.Created ?? "",
    config: inspect.Config ?? {},
  };
}
