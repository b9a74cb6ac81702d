/**
 * Which docker compose project a container belongs to, read from the labels compose puts on
 * every container it creates. Compose v1 (`docker-compose`, Python) and v2 (`docker compose`,
 * Go) write the same project labels; v2 adds the environment files it read.
 */

import { isAbsolute, join } from "node:path";

export const COMPOSE_LABELS = {
  project: "com.docker.compose.project",
  service: "com.docker.compose.service",
  workingDir: "com.docker.compose.project.working_dir",
  configFiles: "com.docker.compose.project.config_files",
  /** v2 only: the env files used for interpolation, comma-separated. */
  environmentFile: "com.docker.compose.project.environment_file",
  version: "com.docker.compose.version",
  configHash: "com.docker.compose.config-hash",
} as const;

export interface ComposeProject {
  project: string;
  service: string;
  /** Absolute project folder. */
  workingDir: string;
  /** Absolute config files, in the order compose merges them (later ones override). */
  configFiles: string[];
  /** The env files compose reads for `${VAR}`: the v2 label, else `<workingDir>/.env`. */
  envFiles: string[];
  /** `1.29.2`, `2.24.0`, … or null when the label is missing. */
  composeVersion: string | null;
}

export type ComposeDetection =
  | { managed: false }
  | { managed: true; project: ComposeProject }
  /** Managed by compose, but the labels do not say where its files are. */
  | { managed: true; project: null; projectName: string; reason: string };

/**
 * Reads the compose labels of a container (`imageLabels`: those of the image it runs). Pure. A container without the project label is not
 * managed by compose; one whose labels lack the service, folder or files (an old compose, or
 * labels set by hand) is managed but cannot be pinned, and the reason says which label is
 * missing.
 */
export function detectComposeProject(
  labels: Record<string, string> | null | undefined,
  imageLabels: Record<string, string> | null | undefined,
): ComposeDetection {
  const l = labels ?? {};
  const projectName = l[COMPOSE_LABELS.project];
  if (!projectName) return { managed: false };
  // Docker shows an image's labels on its containers. Compose labels that came with the image
  // are the registry's word, not compose's: they must not choose which host files get edited.
  if (Object.keys(imageLabels ?? {}).some((k) => k.startsWith("com.docker.compose."))) {
    return {
      managed: true,
      project: null,
      projectName,
      reason: "the image itself carries com.docker.compose.* labels, so the container's labels " +
        "do not reliably name the compose files",
    };
  }
  const missing = (label: string) => ({
    managed: true as const,
    project: null,
    projectName,
    reason: `the container's label ${label} is missing, so the compose file cannot be found`,
  });
  const service = l[COMPOSE_LABELS.service];
  if (!service) return missing(COMPOSE_LABELS.service);
  const workingDir = l[COMPOSE_LABELS.workingDir];
  if (!workingDir || !isAbsolute(workingDir)) return missing(COMPOSE_LABELS.workingDir);
  const files = splitList(l[COMPOSE_LABELS.configFiles]);
  if (!files.length) return missing(COMPOSE_LABELS.configFiles);
  if (files.includes("-")) {
    return {
      managed: true,
      project: null,
      projectName,
      reason: "the project was started from standard input (-f -), so there is no file to edit",
    };
  }
  const resolve = (p: string) => isAbsolute(p) ? p : join(workingDir, p);
  const envLabel = splitList(l[COMPOSE_LABELS.environmentFile]);
  return {
    managed: true,
    project: {
      project: projectName,
      service,
      workingDir,
      configFiles: files.map(resolve),
      envFiles: envLabel.length ? envLabel.map(resolve) : [join(workingDir, ".env")],
      composeVersion: l[COMPOSE_LABELS.version] || null,
    },
  };
}

function splitList(value: string | undefined): string[] {
  return (value ?? "").split(",").map((s) => s.trim()).filter(Boolean);
}
