/**
 * The real test environment that `bash scripts/test-env.sh` prepares: a Docker daemon, a
 * private registry on 127.0.0.1:5000 with basic auth, and the test images in it.
 * The names here must match scripts/test-env.sh and test/fixtures/images/.
 *
 * Tests that need the real engine call `await requireTestEnv()` first: it throws, naming the
 * script, when something is missing, so such a test fails loudly and never passes silently.
 */

export const REGISTRY = "127.0.0.1:5000";
export const REGISTRY_USER = "hyperbot";
export const REGISTRY_PASSWORD = "hyperbot-test-pw";
/** The repository every test image lives in. */
export const REPOSITORY = `${REGISTRY}/hyperbot/app`;
/** A DOCKER_CONFIG folder logged in to REGISTRY; root's ~/.docker is never touched. */
export const TEST_DOCKER_CONFIG = "/var/lib/hyperbot-test/docker-config";
/** The Engine API socket (Engine 20.10, API 1.41). */
export const DOCKER_SOCKET = "/var/run/docker.sock";
/** The label scripts/test-env.sh stamps on each image: a hash of its Dockerfiles. */
export const BUILD_HASH_LABEL = "hyperbot.test.build-hash";

/** The credentials for the Engine API's X-Registry-Auth header when pulling from REGISTRY. */
export const REGISTRY_AUTH = {
  username: REGISTRY_USER,
  password: REGISTRY_PASSWORD,
  serveraddress: REGISTRY,
} as const;

/** The tags scripts/test-env.sh pushes; the Dockerfiles are in test/fixtures/images/<tag>/. */
export const IMAGE_TAGS = [
  "v1",
  "v2",
  "crash",
  "unhealthy",
  "healthy-v1",
  "healthy-v2",
  "slow-healthy",
] as const;
export type ImageTag = typeof IMAGE_TAGS[number];

/**
 * Full references, by tag. Every image: `VOLUME /data`, `WORKDIR /app`, `EXPOSE 8080`, label
 * `hyperbot.test.image=<tag>`, and on start appends `started <tag>` to /data/boot.log.
 * - v1 / v2: run until SIGTERM, then exit 0 at once. Label org.opencontainers.image.version
 *   and env APP_VERSION are "1" / "2"; env IMAGE_ONLY_V1=yes only in v1, IMAGE_ONLY_V2=yes
 *   only in v2 (and in every image below except healthy-v1, which is version 1).
 * - crash: exits 1 one second after start.
 * - unhealthy: like v2; its health check always fails (unhealthy after about 2-3 s).
 * - healthy-v1 / healthy-v2: like v1 / v2; healthy after about 1 s.
 * - slow-healthy: like v2; "starting" for about 3 s, then healthy.
 */
export const IMAGES: Readonly<Record<ImageTag, string>> = Object.fromEntries(
  IMAGE_TAGS.map((tag) => [tag, `${REPOSITORY}:${tag}`]),
) as Record<ImageTag, string>;

export const IMAGE_V1 = IMAGES.v1;
export const IMAGE_V2 = IMAGES.v2;
export const IMAGE_CRASH = IMAGES.crash;
export const IMAGE_UNHEALTHY = IMAGES.unhealthy;
export const IMAGE_HEALTHY_V1 = IMAGES["healthy-v1"];
export const IMAGE_HEALTHY_V2 = IMAGES["healthy-v2"];
export const IMAGE_SLOW_HEALTHY = IMAGES["slow-healthy"];

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the docker CLI with the test DOCKER_CONFIG (logged in to REGISTRY). Never throws for a
 * non-zero exit; throws only when the docker binary cannot be started.
 */
export async function docker(...args: string[]): Promise<DockerResult> {
  const output = await new Deno.Command("docker", {
    args: ["--config", TEST_DOCKER_CONFIG, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout).trim(),
    stderr: decoder.decode(output.stderr).trim(),
  };
}

/** Like `docker()`, but throws with the command and its stderr when the exit code is not 0. */
export async function dockerOk(...args: string[]): Promise<string> {
  const result = await docker(...args);
  if (result.code !== 0) {
    throw new Error(`docker ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  }
  return result.stdout;
}

/** A container or folder name unique to this run: `hyperbot-test-<prefix>-<random>`. */
export function uniqueName(prefix: string): string {
  return `hyperbot-test-${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Basic-auth GET against the registry's HTTP API (path starts with /v2/). */
export function registryFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Basic ${btoa(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`)}`);
  return fetch(`http://${REGISTRY}${path}`, {
    signal: AbortSignal.timeout(5000),
    ...init,
    headers,
  });
}

let ready: Promise<void> | undefined;

/**
 * Checks, once per test process, that the daemon answers, the registry demands and accepts
 * our credentials, and every test image is in the registry. Throws an Error naming
 * `bash scripts/test-env.sh` otherwise.
 */
export function requireTestEnv(): Promise<void> {
  ready ??= checkTestEnv();
  return ready;
}

async function checkTestEnv(): Promise<void> {
  const problems: string[] = [];

  const info = await docker("version", "--format", "{{.Server.APIVersion}}").catch((err) => ({
    code: -1,
    stdout: "",
    stderr: String(err),
  }));
  if (info.code !== 0) problems.push(`the Docker daemon does not answer: ${info.stderr}`);

  const anonymous = await fetchStatus(`http://${REGISTRY}/v2/`);
  if (anonymous !== 401) {
    problems.push(
      anonymous === 0
        ? `no registry answers on ${REGISTRY}`
        : `${REGISTRY}/v2/ answers ${anonymous} without credentials, not 401 (not the test registry?)`,
    );
  } else {
    const missing: string[] = [];
    for (const tag of IMAGE_TAGS) {
      const status = await fetchStatus(`/v2/hyperbot/app/manifests/${tag}`, true);
      if (status !== 200) missing.push(`${tag} (HTTP ${status})`);
    }
    if (missing.length > 0) {
      problems.push(`images missing from ${REPOSITORY}: ${missing.join(", ")}`);
    }
  }

  try {
    const config = await Deno.readTextFile(`${TEST_DOCKER_CONFIG}/config.json`);
    if (!config.includes(`"${REGISTRY}"`)) {
      problems.push(`${TEST_DOCKER_CONFIG}/config.json has no login for ${REGISTRY}`);
    }
  } catch (err) {
    problems.push(`cannot read ${TEST_DOCKER_CONFIG}/config.json: ${err}`);
  }

  if (problems.length > 0) {
    throw new Error(
      `the real test environment is not ready:\n  - ${problems.join("\n  - ")}\n` +
        `Run \`bash scripts/test-env.sh\` as root first (or \`bash scripts/test.sh\`, which runs it).`,
    );
  }
}

/** The HTTP status of a GET, or 0 when nothing answers. */
async function fetchStatus(urlOrPath: string, withAuth = false): Promise<number> {
  try {
    const response = withAuth
      ? await registryFetch(urlOrPath, {
        method: "HEAD",
        headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" },
      })
      : await fetch(urlOrPath, { signal: AbortSignal.timeout(3000) });
    await response.body?.cancel();
    return response.status;
  } catch {
    return 0;
  }
}

/**
 * A fresh temporary folder outside /tmp and /var/tmp, for paths install must accept (it refuses
 * those two: the service has PrivateTmp=yes). In the repository's `.test-tmp/` unless the
 * repository itself lies under /tmp; then in ~/.cache. The caller removes it.
 */
export async function makeTempDirOutsideTmp(prefix: string): Promise<string> {
  const repo = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  const underTmp = ["/tmp", "/var/tmp"].some((t) => repo === t || repo.startsWith(`${t}/`));
  const parent = underTmp
    ? `${Deno.env.get("HOME") ?? "/root"}/.cache/hyperbot-ops-test`
    : `${repo}/.test-tmp`;
  await Deno.mkdir(parent, { recursive: true });
  return await Deno.makeTempDir({ dir: parent, prefix });
}
