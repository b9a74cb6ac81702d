/**
 * The unit runs the watcher with `PrivateTmp=yes`: it sees its own empty /tmp and /var/tmp, so a
 * folder or file of ours there would be a different one for the watcher than for cron's health
 * and the operator. Install refuses such paths before it changes anything. Pure.
 */

import { dirname } from "node:path";
import { type Config, isInside, resolveExisting } from "../config.ts";
import { ConfigError } from "../errors.ts";

/** The folders the service replaces with its own under `PrivateTmp=yes`. */
export const PRIVATE_TMP_DIRS = ["/tmp", "/var/tmp"];

/**
 * Throws ConfigError (exit 3) naming the first key whose path is /tmp, /var/tmp or below,
 * after following the links that exist (`realPath` throws for a path that does not exist).
 */
export function refusePrivateTmpPaths(
  config: Pick<Config, "baseDir" | "dataDir" | "logDir" | "stateDir" | "metricsFile">,
  configFile: string,
  realPath: (path: string) => string,
): void {
  const paths: [string, string][] = [
    ["baseDir", config.baseDir],
    ["dataDir", config.dataDir],
    ["logDir", config.logDir],
    ["stateDir", config.stateDir],
    ["metricsFile", config.metricsFile],
    ["--config", configFile],
  ];
  const tmps = PRIVATE_TMP_DIRS.map((d) => resolveExisting(d, realPath));
  for (const [key, path] of paths) {
    if (path === "") continue;
    const folder = key === "metricsFile" || key === "--config" ? dirname(path) : path;
    const resolved = resolveExisting(folder, realPath);
    const tmp = PRIVATE_TMP_DIRS.find((t, i) => isInside(folder, t) || isInside(resolved, tmps[i]));
    if (tmp === undefined) continue;
    throw new ConfigError(
      `'${key}' (${path}) is under ${tmp}, which the service does not share (PrivateTmp=yes)`,
      {
        object: key,
        hint: key === "--config"
          ? "keep the config file outside /tmp and /var/tmp, e.g. /etc/hyperbot-ops/config.json"
          : `give '${key}' a folder outside /tmp and /var/tmp, e.g. /opt/trading-system` +
            " (baseDir) or /var/lib/hyperbot-ops (stateDir)",
      },
    );
  }
}
