/**
 * `DockerConfigCredentialStore`: registry credentials where `docker login` stored them, in
 * `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`): a credential helper
 * (`credHelpers[host]`, then `credsStore`) run as `docker-credential-<name> get`, else the
 * `auths` entry of the file.
 */

import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import type { CredentialStore, RegistryAuth } from "../docker.ts";
import { printable } from "../printable.ts";
import { type CommandRunner, runCommand } from "./run_command.ts";

/** The key Docker Hub's credentials are stored under. */
export const DOCKER_HUB_SERVER = "https://index.docker.io/v1/";
const DOCKER_HUB_HOSTS = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

export interface DockerConfigCredentialStoreOptions {
  /** DOCKER_CONFIG, HOME and PATH are read from it; default the process environment. */
  env?: Record<string, string | undefined>;
  /** Overrides the config file path. */
  configFile?: string;
  /** Runs the credential helper; default runCommand. */
  run?: CommandRunner;
  /** Reads a file; returns null when it does not exist. */
  readTextFile?: (path: string) => string | null;
  /** Timeout of a credential helper in milliseconds; default 15 000. */
  helperTimeoutMs?: number;
}

interface DockerConfigFile {
  auths?: Record<
    string,
    { auth?: string; username?: string; password?: string; identitytoken?: string }
  >;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

export class DockerConfigCredentialStore implements CredentialStore {
  readonly configFile: string;
  readonly #env: Record<string, string | undefined>;
  readonly #run: CommandRunner;
  readonly #read: (path: string) => string | null;
  readonly #timeoutMs: number;

  constructor(options: DockerConfigCredentialStoreOptions = {}) {
    this.#env = options.env ?? Deno.env.toObject();
    this.configFile = options.configFile ?? dockerConfigFile(this.#env);
    this.#run = options.run ?? runCommand;
    this.#read = options.readTextFile ?? readTextFileOrNull;
    this.#timeoutMs = options.helperTimeoutMs ?? 15_000;
  }

  /**
   * Credentials for a registry host (`registry.example.com:5000`, `docker.io`). Returns null
   * when the config file is missing or holds nothing for the host. Throws ConfigError naming
   * the file when it is malformed, or the helper when a credential helper fails.
   */
  async lookup(registryHost: string): Promise<RegistryAuth | null> {
    const text = this.#read(this.configFile);
    if (text === null) return null;
    const config = parseDockerConfig(text, this.configFile);
    const host = canonicalHost(registryHost);
    const serveraddress = host === "docker.io" ? DOCKER_HUB_SERVER : host;

    const helper = findEntry(config.credHelpers ?? {}, host) ?? config.credsStore;
    if (helper) {
      const fromHelper = await this.#fromHelper(helper, serveraddress);
      if (fromHelper) return fromHelper;
    }
    const entry = findEntry(config.auths ?? {}, host);
    return entry ? authFromEntry(entry, serveraddress, this.configFile) : null;
  }

  /**
   * Asks `docker-credential-<name> get`. What the helper prints is never put into an error, and
   * no error keeps a cause that could quote it (JSON.parse quotes its input): a helper that
   * echoes the secret and fails would otherwise send it to the status file the bot reads, the
   * history, the logs and notifications. The error names the helper and its exit code.
   */
  async #fromHelper(name: string, serveraddress: string): Promise<RegistryAuth | null> {
    const program = `docker-credential-${printable(name, 80)}`;
    const fail = (why: string) =>
      new ConfigError(`credential helper ${program} failed: ${why}`, {
        object: this.configFile,
        hint: `check that ${program} is on PATH and works: echo ${
          printable(serveraddress, 200)
        } | ${program} get (its output is not shown here: it can hold the secret)`,
      });
    let result;
    try {
      result = await this.#run(program, ["get"], {
        stdin: serveraddress,
        timeoutMs: this.#timeoutMs,
        env: helperEnv(this.#env),
      });
    } catch (err) {
      // Spawning failed: nothing of the helper's output exists yet, only the reason.
      throw fail(err instanceof Deno.errors.NotFound ? "not found" : printable(String(err), 200));
    }
    if (result.code !== 0) {
      // The helpers' way of saying "nothing stored for this server".
      if (/credentials not found/i.test(result.stdout + result.stderr)) return null;
      if (result.code === 124) throw fail(`no answer within ${this.#timeoutMs / 1000} s`);
      throw fail(`exit code ${result.code}`);
    }
    let creds: unknown;
    try {
      creds = JSON.parse(result.stdout);
    } catch {
      creds = undefined;
    }
    if (typeof creds !== "object" || creds === null) {
      throw fail("exit code 0, but its answer is not a JSON object");
    }
    const { Username, Secret } = creds as Record<string, unknown>;
    if (!Secret) return null;
    if (typeof Secret !== "string" || (Username !== undefined && typeof Username !== "string")) {
      throw fail("exit code 0, but Username and Secret in its answer are not strings");
    }
    if (Username === "<token>") return { identitytoken: Secret, serveraddress };
    return { username: Username ?? "", password: Secret, serveraddress };
  }
}

/** `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`. */
export function dockerConfigFile(env: Record<string, string | undefined>): string {
  if (env.DOCKER_CONFIG) return join(env.DOCKER_CONFIG, "config.json");
  return join(env.HOME ?? "/root", ".docker", "config.json");
}

/** Parses config.json; throws ConfigError naming the file when it is not a JSON object. */
export function parseDockerConfig(text: string, file: string): DockerConfigFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError("docker config file is not valid JSON", {
      object: file,
      cause: err,
      hint: "fix the file, or log in again with docker login",
    });
  }
  const isObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObject(data)) {
    throw new ConfigError("docker config file must hold a JSON object", { object: file });
  }
  const config = data as Record<string, unknown>;
  for (const key of ["auths", "credHelpers"]) {
    if (config[key] !== undefined && !isObject(config[key])) {
      throw new ConfigError(`'${key}' in the docker config file must be an object`, {
        object: file,
      });
    }
  }
  if (config.credsStore !== undefined && typeof config.credsStore !== "string") {
    throw new ConfigError("'credsStore' in the docker config file must be a string", {
      object: file,
    });
  }
  return config as DockerConfigFile;
}

/** A host the way keys are compared: no scheme, no path; Docker Hub's names become `docker.io`. */
export function canonicalHost(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "").toLowerCase();
  return DOCKER_HUB_HOSTS.has(host) ? "docker.io" : host;
}

function findEntry<T>(map: Record<string, T>, host: string): T | undefined {
  if (Object.hasOwn(map, host)) return map[host];
  for (const [key, value] of Object.entries(map)) if (canonicalHost(key) === host) return value;
  return undefined;
}

function authFromEntry(
  entry: NonNullable<DockerConfigFile["auths"]>[string],
  serveraddress: string,
  file: string,
): RegistryAuth | null {
  if (typeof entry !== "object" || entry === null) return null;
  if (entry.identitytoken) return { identitytoken: entry.identitytoken, serveraddress };
  if (entry.auth) {
    let decoded: string;
    try {
      decoded = new TextDecoder().decode(Uint8Array.from(atob(entry.auth), (c) => c.charCodeAt(0)));
    } catch (err) {
      throw new ConfigError(
        `the auth of '${serveraddress}' in the docker config file is not base64`,
        {
          object: file,
          cause: err,
        },
      );
    }
    const colon = decoded.indexOf(":");
    if (colon < 0) {
      throw new ConfigError(
        `the auth of '${serveraddress}' in the docker config file is not user:password`,
        {
          object: file,
        },
      );
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), serveraddress };
  }
  if (entry.username && entry.password) {
    return { username: entry.username, password: entry.password, serveraddress };
  }
  return null;
}

function helperEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  out.PATH ??= "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  return out;
}

function readTextFileOrNull(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw new ConfigError("cannot read docker config file", { object: path, cause: err });
  }
}
