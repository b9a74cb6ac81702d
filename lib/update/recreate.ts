/**
 * How to recreate a container on a new image with the same configuration, as pure functions
 * of its inspect output and the old and new images' configs.
 *
 * The rule for values an image can supply (env, cmd, entrypoint, labels, ports, volumes,
 * healthcheck, user, working dir, stop signal): a value equal to what the OLD image supplied
 * came from the image, so it is left out and the NEW image's value applies; anything else was
 * set for the container and is kept.
 */

import type {
  ContainerConfig,
  ContainerInspect,
  CreateContainerBody,
  EndpointSettings,
  MountSpec,
} from "../docker.ts";

/**
 * Why this container cannot be recreated faithfully (empty when it can). The update refuses
 * such containers instead of degrading them silently.
 */
export function unrecreatableReasons(old: ContainerInspect): string[] {
  const reasons: string[] = [];
  if (old.HostConfig.AutoRemove) {
    reasons.push(
      "it was started with --rm: stopping it would delete it, so it could not be rolled back",
    );
  }
  const labels = old.Config.Labels ?? {};
  if (labels["com.docker.swarm.service.id"]) {
    reasons.push("it belongs to a swarm service; update the service with `docker service update`");
  }
  if (old.State.Paused) reasons.push("it is paused; unpause it first");
  // A restarting (crash-looping) bot is not refused: the update may be what fixes it.
  for (const mount of old.HostConfig.Mounts ?? []) {
    if (mount.Type === "volume" && !mount.Source && !findMountName(old, mount.Target)) {
      reasons.push(
        `its anonymous volume at ${mount.Target} cannot be found, so its data could not be kept`,
      );
    }
  }
  return reasons;
}

/** Warnings the operator should see (the update goes ahead). */
export function recreateWarnings(
  old: ContainerInspect,
  oldImage: ContainerConfig | null,
): string[] {
  // A compose project's file is pinned (or warned about) after verification: lib/compose/.
  const warnings: string[] = [];
  const bindings = Object.entries(old.HostConfig.PortBindings ?? {}) as [
    string,
    { HostPort?: string }[] | null,
  ][];
  const ephemeral = bindings.filter(([, list]) => (list ?? []).some((b) => !b.HostPort)).map((
    [p],
  ) => p);
  if (ephemeral.length) {
    warnings.push(
      `port ${
        ephemeral.join(", ")
      } is published on a random host port, which will change; give it a fixed host port`,
    );
  }
  if (!oldImage) {
    warnings.push(
      "the old image is no longer present: every env, cmd and label of the old container is kept as set for the container",
    );
  }
  return warnings;
}

/**
 * The create body of the new container: the old container's configuration on `imageRef`.
 * `oldImage` is the config of the image the old container runs (null when it is gone).
 */
export function buildCreateBody(
  old: ContainerInspect,
  oldImage: ContainerConfig | null,
  imageRef: string,
): CreateContainerBody {
  const img = oldImage ?? {};
  const c = old.Config;
  const config: ContainerConfig = { ...c };

  config.Image = imageRef;
  config.Env = withoutItems(c.Env, img.Env);
  config.Labels = withoutEntries(c.Labels, img.Labels);
  config.ExposedPorts = withoutKeys(c.ExposedPorts, img.ExposedPorts);
  config.Volumes = withoutKeys(c.Volumes, img.Volumes);
  for (const key of ["User", "WorkingDir", "StopSignal", "Healthcheck", "Shell"] as const) {
    if (c[key] !== undefined && sameValue(c[key], img[key])) delete config[key];
  }
  // The daemon takes the image's Cmd only when no Entrypoint is given, so they travel together.
  if (sameValue(c.Entrypoint ?? null, img.Entrypoint ?? null)) {
    config.Entrypoint = null;
    if (sameValue(c.Cmd ?? null, img.Cmd ?? null)) config.Cmd = null;
  }
  // Docker names a container's host after its ID unless one was set. In another container's
  // network (or the host's) the name is that one's, and create refuses to be given one.
  const mode = old.HostConfig.NetworkMode ?? "";
  if (c.Hostname && old.Id.startsWith(c.Hostname)) delete config.Hostname;
  if (mode === "host" || mode.startsWith("container:")) {
    delete config.Hostname;
    delete config.Domainname;
  }
  if (mode.startsWith("container:")) {
    config.ExposedPorts = null;
    delete config.MacAddress;
  }
  delete config.ArgsEscaped;

  const hostConfig = { ...old.HostConfig };
  hostConfig.Mounts = mountsKeepingVolumes(old);
  if (hostConfig.Links) hostConfig.Links = hostConfig.Links.map(linkForCreate);

  return {
    ...config,
    HostConfig: hostConfig,
    NetworkingConfig: { EndpointsConfig: endpointsOf(old) },
  };
}

/**
 * The explicit mounts, plus every volume the old container has that no Bind or Mount names
 * (anonymous volumes from `-v /path` or the image's VOLUME), reattached by name so the new
 * container gets the same data instead of an empty volume.
 */
function mountsKeepingVolumes(old: ContainerInspect): MountSpec[] | null {
  const explicit = (old.HostConfig.Mounts ?? []).map((m) =>
    m.Type === "volume" && !m.Source
      ? { ...m, Source: findMountName(old, m.Target) ?? undefined }
      : m
  );
  const covered = new Set<string>([
    ...explicit.map((m) => cleanPath(m.Target)),
    ...(old.HostConfig.Binds ?? []).map(bindTarget),
  ]);
  const anonymous: MountSpec[] = (old.Mounts ?? [])
    .filter((m) => m.Type === "volume" && m.Name && !covered.has(cleanPath(m.Destination)))
    .map((m) => ({ Type: "volume", Source: m.Name, Target: m.Destination, ReadOnly: !m.RW }));
  const all = [...explicit, ...anonymous];
  return all.length ? all : null;
}

function findMountName(old: ContainerInspect, target: string): string | null {
  const point = (old.Mounts ?? []).find((m) =>
    m.Type === "volume" && cleanPath(m.Destination) === cleanPath(target)
  );
  return point?.Name ?? null;
}

/** `src:/dst[:opts]` -> `/dst` */
export function bindTarget(bind: string): string {
  const parts = bind.split(":");
  return cleanPath(parts.length >= 2 ? parts[1] : parts[0]);
}

function cleanPath(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, "") : path;
}

/** Inspect shows links as `/db:/app/db`; create wants `db:db`. */
function linkForCreate(link: string): string {
  const [source, target] = link.split(":");
  if (!target) return link;
  return `${source.replace(/^\//, "")}:${target.slice(target.lastIndexOf("/") + 1)}`;
}

function endpointsOf(old: ContainerInspect): Record<string, EndpointSettings> {
  const out: Record<string, EndpointSettings> = {};
  const shortId = old.Id.slice(0, 12);
  for (const [network, ep] of Object.entries(old.NetworkSettings.Networks ?? {})) {
    const aliases = (ep.Aliases ?? []).filter((a) => a !== shortId && a !== old.Id);
    const endpoint: EndpointSettings = {};
    if (ep.IPAMConfig && Object.values(ep.IPAMConfig).some((v) => v && v.length)) {
      endpoint.IPAMConfig = ep.IPAMConfig;
    }
    if (aliases.length) endpoint.Aliases = aliases;
    if (ep.Links?.length) endpoint.Links = ep.Links;
    if (ep.DriverOpts && Object.keys(ep.DriverOpts).length) endpoint.DriverOpts = ep.DriverOpts;
    out[network] = endpoint;
  }
  return out;
}

function withoutItems(values: string[] | null | undefined, fromImage: string[] | null | undefined) {
  if (!values) return values ?? null;
  const image = new Set(fromImage ?? []);
  return values.filter((v) => !image.has(v));
}

function withoutEntries(
  values: Record<string, string> | null | undefined,
  fromImage: Record<string, string> | null | undefined,
) {
  if (!values) return values ?? null;
  const image = fromImage ?? {};
  return Object.fromEntries(Object.entries(values).filter(([k, v]) => image[k] !== v));
}

function withoutKeys(
  values: Record<string, unknown> | null | undefined,
  fromImage: Record<string, unknown> | null | undefined,
) {
  if (!values) return values ?? null;
  const image = fromImage ?? {};
  const kept = Object.fromEntries(Object.entries(values).filter(([k]) => !(k in image)));
  return Object.keys(kept).length ? kept : null;
}

/** Structural equality for JSON values (arrays in order, objects by keys). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === undefined || b === undefined) {
    return (a ?? null) === (b ?? null) || (isEmpty(a) && isEmpty(b));
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
      a.every((v, i) => sameValue(v, b[i]));
  }
  if (typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a as object).filter((k) =>
      (a as Record<string, unknown>)[k] !== undefined
    );
    const kb = Object.keys(b as object).filter((k) =>
      (b as Record<string, unknown>)[k] !== undefined
    );
    return ka.length === kb.length &&
      ka.every((k) =>
        sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
      );
  }
  return false;
}

function isEmpty(v: unknown): boolean {
  return v === null || v === undefined || v === "" || (Array.isArray(v) && v.length === 0);
}
