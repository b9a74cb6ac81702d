/**
 * Configuration, in this order of precedence: flags, environment, the JSON config file,
 * defaults that match today's servers. The keys are a contract documented in the README.
 */

import { dirname, isAbsolute, join } from "node:path";
import { ConfigError } from "./errors.ts";
import { parseImageRef } from "./image_ref.ts";
import { COMPOSE_MODES, type ComposeMode } from "./compose/pin.ts";
import { printable } from "./printable.ts";
import {
  type ChannelConfig,
  DEFAULT_NOTIFY_OUTCOMES,
  type NotifyLanguage,
  parseChannels,
  parseLanguage,
  parseOutcomes,
  parsePingUrl,
} from "./notify/channels.ts";
import type { Outcome } from "./update/report.ts";

/** The service name of the first (or only) bot on a host. */
export const DEFAULT_SERVICE = "hyperbot-update-monitor";

export interface Config {
  baseDir: string;
  dataDir: string;
  logDir: string;
  stateDir: string;
  container: string;
  service: string;
  /** Repositories that may be deployed. Empty: the repository of the image the container runs now. */
  allowedImages: string[];
  healthTimeoutSeconds: number;
  stableSeconds: number;
  keepImages: number;
  dockerHost: string;
  /** After a verified update of a docker compose container: pin its image in the project's files, only warn, or nothing. */
  compose: ComposeMode;
  /** node_exporter textfile to keep up to date (`.prom`); empty: no file. */
  metricsFile: string;
  /** Where notifications go (see lib/notify/channels.ts); empty: none are sent. */
  notify: ChannelConfig[];
  notifyLanguage: NotifyLanguage;
  /** Update outcomes that are notified (default updated, rolled_back, failed). */
  notifyOutcomes: Outcome[];
  /** Dead-man's switch pinged by every health run (healthchecks.io style); null: none. */
  pingUrl: string | null;
  /** The file the settings were read from, or null when it did not exist. */
  configFile: string | null;
}

export type ConfigKey = Exclude<keyof Config, "configFile">;
export type ConfigInput = Partial<Record<ConfigKey, unknown>>;

export const DEFAULT_CONFIG_FILE = "/etc/hyperbot-ops/config.json";
export const DEFAULT_BASE_DIR = "/opt/trading-system";

type Kind =
  | "path"
  | "optionalPath"
  | "name"
  | "images"
  | "seconds"
  | "count"
  | "dockerHost"
  | "compose"
  | "notify"
  | "notifyLanguage"
  | "notifyOutcomes"
  | "pingUrl";
export const CONFIG_KEYS: Record<
  ConfigKey,
  { kind: Kind; env: string; flag: string; doc: string }
> = {
  baseDir: {
    kind: "path",
    env: "HYPERBOT_OPS_BASE_DIR",
    flag: "base-dir",
    doc: "base folder of the bot",
  },
  dataDir: {
    kind: "path",
    env: "HYPERBOT_OPS_DATA_DIR",
    flag: "data-dir",
    doc: "folder shared with the bot (trigger, status)",
  },
  logDir: { kind: "path", env: "HYPERBOT_OPS_LOG_DIR", flag: "log-dir", doc: "log folder" },
  stateDir: {
    kind: "path",
    env: "HYPERBOT_OPS_STATE_DIR",
    flag: "state-dir",
    doc: "journal, lock, heartbeat",
  },
  container: {
    kind: "name",
    env: "HYPERBOT_OPS_CONTAINER",
    flag: "container",
    doc: "bot container name",
  },
  service: {
    kind: "name",
    env: "HYPERBOT_OPS_SERVICE",
    flag: "service",
    doc: "systemd service name",
  },
  allowedImages: {
    kind: "images",
    env: "HYPERBOT_OPS_ALLOWED_IMAGES",
    flag: "allowed-image",
    doc: "repositories that may be deployed",
  },
  healthTimeoutSeconds: {
    kind: "seconds",
    env: "HYPERBOT_OPS_HEALTH_TIMEOUT_SECONDS",
    flag: "health-timeout",
    doc: "wait for healthy",
  },
  stableSeconds: {
    kind: "seconds",
    env: "HYPERBOT_OPS_STABLE_SECONDS",
    flag: "stable-seconds",
    doc: "stay running without a healthcheck",
  },
  keepImages: {
    kind: "count",
    env: "HYPERBOT_OPS_KEEP_IMAGES",
    flag: "keep-images",
    doc: "images of the repository to keep",
  },
  dockerHost: {
    kind: "dockerHost",
    env: "DOCKER_HOST",
    flag: "docker-host",
    doc: "unix:///path/to/docker.sock",
  },
  compose: {
    kind: "compose",
    env: "HYPERBOT_OPS_COMPOSE",
    flag: "compose",
    doc: "pin (default), warn or off: the image in a compose project after an update",
  },
  metricsFile: {
    kind: "optionalPath",
    env: "HYPERBOT_OPS_METRICS_FILE",
    flag: "metrics-file",
    doc: "Prometheus textfile (*.prom) for node_exporter; empty: off",
  },
  notify: {
    kind: "notify",
    env: "HYPERBOT_OPS_NOTIFY",
    flag: "notify",
    doc: "notification channels, a JSON list (best in the config file: a flag shows in ps)",
  },
  notifyLanguage: {
    kind: "notifyLanguage",
    env: "HYPERBOT_OPS_NOTIFY_LANGUAGE",
    flag: "notify-language",
    doc: "zh (default) or en",
  },
  notifyOutcomes: {
    kind: "notifyOutcomes",
    env: "HYPERBOT_OPS_NOTIFY_OUTCOMES",
    flag: "notify-outcomes",
    doc: "update outcomes notified (default updated,rolled_back,failed)",
  },
  pingUrl: {
    kind: "pingUrl",
    env: "HYPERBOT_OPS_PING_URL",
    flag: "ping-url",
    doc: "dead-man's switch pinged by health (<url>, or <url>/fail)",
  },
};

/** Where `install --apply --metrics` points metricsFile: node_exporter's textfile folder on Debian. */
export const DEFAULT_METRICS_FILE = "/var/lib/node_exporter/textfile_collector/hyperbot_ops.prom";

export interface LoadConfigOptions {
  /** Values from flags (strings as typed, or already typed values). */
  flags?: ConfigInput;
  /** `--config FILE`; falls back to HYPERBOT_OPS_CONFIG, then the default path. */
  configFile?: string;
  env?: Record<string, string | undefined>;
  /**
   * Reads a file; returns null when it does not exist. The CLI passes the host's
   * (lib/adapters/process.ts); without one no file is read.
   */
  readTextFile?: (path: string) => string | null;
  /**
   * The real path of an existing path (links resolved); throws when it does not exist. The CLI
   * passes the host's; without one no link is followed.
   */
  realPath?: (path: string) => string;
  /** The working folder: a relative config file that is not found is named by its absolute path. */
  cwd?: string;
}

/** Builds the configuration. Throws ConfigError naming the file and the key on bad input. */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? {};
  const read = options.readTextFile ?? (() => null);
  const explicitFile = options.configFile ?? env.HYPERBOT_OPS_CONFIG;
  const file = explicitFile ?? DEFAULT_CONFIG_FILE;

  let text: string | null;
  try {
    text = read(file);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError("cannot read config file", { object: file, cause: err });
  }
  if (text === null && explicitFile !== undefined) {
    const tried = options.cwd && !isAbsolute(file) ? join(options.cwd, file) : file;
    throw new ConfigError("config file not found", {
      object: tried,
      hint:
        "check --config or HYPERBOT_OPS_CONFIG; without either, a missing default file means defaults",
    });
  }
  const fromFile = text === null ? {} : parseConfigFile(text, file);

  const fromEnv: ConfigInput = {};
  for (
    const [key, spec] of Object.entries(CONFIG_KEYS) as [
      ConfigKey,
      (typeof CONFIG_KEYS)[ConfigKey],
    ][]
  ) {
    const value = env[spec.env];
    if (value !== undefined && value !== "") fromEnv[key] = value;
  }

  const merged: ConfigInput = { ...fromFile, ...fromEnv, ...stripUndefined(options.flags ?? {}) };
  const sourceOf = (key: ConfigKey) =>
    options.flags?.[key] !== undefined
      ? `--${CONFIG_KEYS[key].flag}`
      : fromEnv[key] !== undefined
      ? CONFIG_KEYS[key].env
      : file;

  const value = <K extends ConfigKey>(key: K): Config[K] | undefined => {
    const raw = merged[key];
    if (raw === undefined) return undefined;
    return coerce(key, raw, sourceOf(key)) as Config[K];
  };

  const baseDir = value("baseDir") ?? DEFAULT_BASE_DIR;
  const config: Config = {
    baseDir,
    dataDir: value("dataDir") ?? join(baseDir, "data"),
    logDir: value("logDir") ?? join(baseDir, "logs"),
    stateDir: value("stateDir") ?? "/var/lib/hyperbot-ops",
    container: value("container") ?? "trading-system-app",
    service: value("service") ?? DEFAULT_SERVICE,
    allowedImages: value("allowedImages") ?? [],
    healthTimeoutSeconds: value("healthTimeoutSeconds") ?? 120,
    stableSeconds: value("stableSeconds") ?? 10,
    keepImages: value("keepImages") ?? 2,
    dockerHost: value("dockerHost") ?? "unix:///var/run/docker.sock",
    compose: value("compose") ?? "pin",
    metricsFile: value("metricsFile") ?? "",
    notify: value("notify") ?? [],
    notifyLanguage: value("notifyLanguage") ?? "zh",
    notifyOutcomes: value("notifyOutcomes") ?? [...DEFAULT_NOTIFY_OUTCOMES],
    pingUrl: value("pingUrl") ?? null,
    configFile: text === null ? null : file,
  };
  checkFolderSeparation(config, sourceOf, options.realPath ?? ((path) => path));
  return config;
}

/**
 * The bot's container writes anything under dataDir. A stateDir or logDir inside it (or dataDir
 * inside one of them, or the same folder) would let the container plant links, FIFOs or files
 * where root keeps its journal, lock and logs. Compared after resolving `..` and the links that
 * exist, so `/opt/bot/logs/../data/x` and a link into dataDir are caught too.
 */
function checkFolderSeparation(
  config: Config,
  sourceOf: (key: ConfigKey) => string,
  realPath: (path: string) => string,
) {
  const data = resolveExisting(config.dataDir, realPath);
  for (const key of ["stateDir", "logDir", "metricsFile"] as const) {
    if (config[key] === "") continue;
    const other = resolveExisting(
      key === "metricsFile" ? dirname(config[key]) : config[key],
      realPath,
    );
    const problem = isInside(other, data)
      ? `'${key}' (${config[key]}) is inside 'dataDir' (${config.dataDir})`
      // A metrics folder above dataDir (/var/lib) is fine: only the file's own folder is written.
      : key !== "metricsFile" && isInside(data, other)
      ? `'dataDir' (${config.dataDir}) is inside '${key}' (${config[key]})`
      : null;
    if (problem) {
      throw new ConfigError(`${problem}, which the bot's container can write`, {
        object: sourceOf(key),
        hint:
          `give '${key}' and 'dataDir' separate folders, e.g. stateDir /var/lib/hyperbot-ops, ` +
          "logDir <baseDir>/logs, dataDir <baseDir>/data",
      });
    }
  }
}

/**
 * `path` as the kernel would walk it: component by component, each link that exists followed
 * before the next `..` applies (so `/srv/link/..` is the parent of the link's target).
 */
export function resolveExisting(path: string, realPath: (path: string) => string): string {
  let current = "/";
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      current = dirname(current);
      continue;
    }
    const next = join(current, part);
    try {
      current = realPath(next);
    } catch {
      current = next; // not there (yet): nothing to follow
    }
  }
  return current;
}

/** Whether `inner` is `outer` or a path below it (both absolute and normalized). */
export function isInside(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer.endsWith("/") ? outer : `${outer}/`);
}

/** Parses the JSON config file; unknown keys and wrong types are errors naming the file and key. */
export function parseConfigFile(text: string, file: string): ConfigInput {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError("config file is not valid JSON", {
      object: file,
      cause: err,
      hint:
        "fix the file (a missing default file means defaults; a file named with --config must exist)",
    });
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ConfigError("config file must hold a JSON object", { object: file });
  }
  const out: ConfigInput = {};
  for (const [key, raw] of Object.entries(data)) {
    if (!(key in CONFIG_KEYS)) {
      throw new ConfigError(`unknown key '${key}' in config file`, {
        object: file,
        hint: `known keys: ${Object.keys(CONFIG_KEYS).join(", ")}`,
      });
    }
    const kind = CONFIG_KEYS[key as ConfigKey].kind;
    if ((kind === "notify" || kind === "notifyOutcomes") && !Array.isArray(raw)) {
      throw new ConfigError(`invalid value for '${key}': expected a JSON list`, { object: file });
    }
    if (CONFIG_KEYS[key as ConfigKey].kind === "images" && !Array.isArray(raw)) {
      throw new ConfigError(`invalid value for '${key}': expected a JSON list of repositories`, {
        object: file,
      });
    }
    coerce(key as ConfigKey, raw, file);
    out[key as ConfigKey] = raw;
  }
  return out;
}

function coerce(key: ConfigKey, raw: unknown, source: string): unknown {
  const spec = CONFIG_KEYS[key];
  const bad = (why: string) =>
    new ConfigError(`invalid value for '${key}': ${why}`, { object: source });
  switch (spec.kind) {
    case "path": {
      if (typeof raw !== "string" || raw === "") throw bad("expected a non-empty path");
      if (!raw.startsWith("/")) throw bad("expected an absolute path");
      // A newline would end a line of the unit or cron file install writes.
      if (printable(raw, Infinity) !== raw) throw bad("a path must not hold control characters");
      return raw;
    }
    case "optionalPath": {
      if (typeof raw !== "string") throw bad('expected a path, or "" for none');
      if (raw === "") return raw;
      if (!raw.startsWith("/") || raw.endsWith("/")) throw bad("expected an absolute file path");
      // node_exporter's textfile collector reads only *.prom files.
      if (!raw.endsWith(".prom")) throw bad("expected a file name ending in .prom");
      return raw;
    }
    case "name": {
      if (typeof raw !== "string" || !/^[a-zA-Z0-9][a-zA-Z0-9_.@-]{0,127}$/.test(raw)) {
        throw bad("expected a name of letters, digits, '_', '.', '@' and '-'");
      }
      return raw;
    }
    case "images": {
      const list = typeof raw === "string"
        ? raw.split(",").map((s) => s.trim()).filter(Boolean)
        : raw;
      if (!Array.isArray(list) || list.some((s) => typeof s !== "string" || s === "")) {
        throw bad("expected a list of repositories");
      }
      for (const entry of list as string[]) {
        try {
          parseImageRef(entry);
        } catch {
          throw bad(`'${entry}' is not a repository such as registry.example.com/org/app`);
        }
      }
      return list;
    }
    case "seconds":
    case "count": {
      const n = typeof raw === "string" && /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw;
      // 0 would switch verification off (stableSeconds) or fail every update (healthTimeoutSeconds).
      if (typeof n !== "number" || !Number.isFinite(n) || n < 1) {
        throw bad(
          spec.kind === "count" ? "expected a whole number >= 1" : "expected a number >= 1",
        );
      }
      if (spec.kind === "count" && (!Number.isInteger(n) || n < 1)) {
        throw bad("expected a whole number >= 1");
      }
      if (n > 86400) throw bad("expected at most 86400");
      return n;
    }
    case "compose": {
      if (typeof raw !== "string" || !(COMPOSE_MODES as readonly string[]).includes(raw)) {
        throw bad(`expected one of ${COMPOSE_MODES.join(", ")}`);
      }
      return raw;
    }
    case "notify":
      return parseChannels(raw, source);
    case "notifyLanguage":
      return parseLanguage(raw, source);
    case "notifyOutcomes":
      return parseOutcomes(raw, source);
    case "pingUrl":
      return parsePingUrl(raw, source);
    case "dockerHost": {
      if (
        typeof raw !== "string" || !/^unix:\/\/\/.+/.test(raw) || printable(raw, Infinity) !== raw
      ) {
        throw bad("expected unix:///path/to/docker.sock (only unix sockets are supported)");
      }
      return raw;
    }
  }
}

function stripUndefined(input: ConfigInput): ConfigInput {
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
}

/** The socket path of a `unix://` docker host. */
export function socketPath(dockerHost: string): string {
  return dockerHost.replace(/^unix:\/\//, "");
}
