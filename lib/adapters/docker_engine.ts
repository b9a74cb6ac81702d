/**
 * `SocketDockerEngine`: the Docker Engine API over the daemon's unix socket.
 */

import type { ContainerInfo, ContainerInspect, ImageInfo } from "../docker.ts";

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
  Config?: import("../docker.ts").ContainerConfig | null;
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
