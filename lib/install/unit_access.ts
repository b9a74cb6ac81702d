/**
 * Does the installed unit let the watcher do what the config asks of it? With `notify` the
 * watcher sends over IPv4/IPv6; with `metricsFile` it writes that file's folder. A unit
 * installed before either was configured forbids it (no network; ProtectSystem=strict without
 * the folder in ReadWritePaths) and the watcher's deliveries and writes fail without a word
 * to the operator. status and health say so. Pure.
 */

import { dirname } from "node:path";
import type { UnitAccess } from "../adapters/systemctl.ts";
import { type Config, isInside } from "../config.ts";

/**
 * One sentence per thing the config needs and the unit forbids; empty when all is allowed, or
 * when systemd did not say (`access` null).
 */
export function unitAccessProblems(
  access: UnitAccess | null | undefined,
  config: Pick<Config, "service" | "notify" | "metricsFile">,
): string[] {
  if (!access) return [];
  const unit = `${config.service}.service`;
  const problems: string[] = [];
  if (config.notify.length > 0) {
    const why = noInternet(access);
    if (why) {
      problems.push(
        `notify is configured, but ${unit} gives the watcher no network (${why}): ` +
          "its notifications cannot be sent",
      );
    }
  }
  if (config.metricsFile !== "" && access.protectSystem === "strict") {
    const folder = dirname(config.metricsFile);
    if (!access.readWritePaths.some((p) => isInside(folder, p))) {
      problems.push(
        `metricsFile is set, but its folder ${folder} is not writable for ${unit} ` +
          "(not in ReadWritePaths): the metrics file cannot be written",
      );
    }
  }
  return problems;
}

/** What the operator runs to bring the unit in line with the config. */
export function unitAccessHint(configFile: string | null): string {
  return `run 'hyperbot-ops install --apply${
    configFile ? ` --config ${configFile}` : ""
  }' to rewrite the unit`;
}

/** Why the service cannot open an IPv4 or IPv6 connection, or null when it can. */
function noInternet(access: UnitAccess): string | null {
  if (access.privateNetwork) return "PrivateNetwork=yes";
  const families = access.restrictAddressFamilies.trim();
  const inet = ["AF_INET", "AF_INET6"];
  if (families.startsWith("~")) {
    const denied = families.slice(1).split(/\s+/);
    if (inet.every((f) => denied.includes(f))) return `RestrictAddressFamilies=${families}`;
  } else if (families !== "" && !inet.some((f) => families.split(/\s+/).includes(f))) {
    return `RestrictAddressFamilies=${families}`;
  }
  const all = ["0.0.0.0/0", "::/0"];
  if (all.every((p) => access.ipAddressDeny.includes(p)) && access.ipAddressAllow.length === 0) {
    return "IPAddressDeny=any";
  }
  return null;
}
