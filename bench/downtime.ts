/**
 * Bot downtime of one update: the time during which no bot container is running, from the
 * Docker daemon's own event timestamps (`die` of the old container to `start` of the new,
 * nanoseconds). Three ways of getting from v1 to v2 of the same container, side by side:
 *
 *   baseline      `docker stop` + `docker start` of the same container (no new image at all)
 *   hyperbot-ops  `hyperbot-ops update <v2>`
 *   naive script  `docker stop; docker rm; docker pull <v2>; docker run …`
 *
 * The images are the test images plus a 32 MiB layer of random bytes, pushed to
 * 127.0.0.1:5000/hbt-bench/bot:{v1,v2}; the v2 tag is removed before every run, so both
 * hyperbot-ops and the naive script really download that layer. The daemon's `pull` event
 * (emitted when a pull completes) tells whether the pull fell inside the downtime.
 */

import { join } from "node:path";
import { registryFetch } from "../test/support/env.ts";
import { cli, docker, dockerOk, makeSandbox, median, run, say, sleep } from "./support.ts";

export const BOT = "hbt-bench-bot";
const ROLE_LABEL = "hbt-bench-role=bot";
const REPO = "127.0.0.1:5000/hbt-bench/bot";
export const BENCH_V1 = `${REPO}:v1`;
export const BENCH_V2 = `${REPO}:v2`;
const PAYLOAD_MIB = 32;

export type Variant = "baseline" | "hyperbot" | "naive";

export interface DowntimeRun {
  variant: Variant;
  downtimeMs: number;
  /** The pull completed while no bot container was running. */
  pullInside: boolean | null;
  /** Wall time of the whole command. */
  wallMs: number;
}

export interface DowntimeResult {
  variant: Variant;
  label: string;
  runs: DowntimeRun[];
  medianMs: number;
  minMs: number;
  maxMs: number;
  medianWallMs: number;
  pullInside: string;
}

/** Builds and pushes the bench images unless the registry has them already. */
export async function prepareImages(): Promise<void> {
  const have = async (tag: string) => {
    const res = await registryFetch(`/v2/hbt-bench/bot/manifests/${tag}`, {
      method: "HEAD",
      headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" },
    });
    await res.body?.cancel();
    return res.status === 200;
  };
  if (await have("v1") && await have("v2")) {
    say(`bench images ${REPO}:{v1,v2} are in the registry`);
  } else {
    for (const tag of ["v1", "v2"]) {
      say(`building ${REPO}:${tag} (test image ${tag} + ${PAYLOAD_MIB} MiB of random bytes)`);
      const dir = await Deno.makeTempDir({ prefix: "hbt-bench-build-" });
      try {
        await Deno.writeTextFile(
          join(dir, "Dockerfile"),
          `FROM 127.0.0.1:5000/hyperbot/app:${tag}\n` +
            `RUN head -c ${PAYLOAD_MIB * 1024 * 1024} /dev/urandom > /payload.bin\n` +
            `LABEL hbt-bench.image=${tag}\n`,
        );
        await dockerOk("build", "-q", "-t", `${REPO}:${tag}`, dir);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
      await dockerOk("push", `${REPO}:${tag}`);
    }
  }
  if ((await docker("image", "inspect", BENCH_V1)).code !== 0) await dockerOk("pull", BENCH_V1);
}

async function removeBots(): Promise<void> {
  await docker("rm", "-f", BOT, `${BOT}-previous`, `${BOT}-updating`);
}

/** A fresh bot on v1 with v2 absent locally. Returns the container id. */
async function freshBot(): Promise<string> {
  await removeBots();
  await docker("rmi", BENCH_V2);
  const id = await dockerOk("run", "-d", "--name", BOT, "--label", ROLE_LABEL, BENCH_V1);
  await sleep(300);
  return id;
}

interface DockerEvent {
  Type: string;
  Action: string;
  id?: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  timeNano: number;
}

async function eventsBetween(since: number, until: number, filters: string[]) {
  const out = await dockerOk(
    "events",
    "--since",
    (since / 1000).toFixed(3),
    "--until",
    (until / 1000).toFixed(3),
    ...filters.flatMap((f) => ["--filter", f]),
    "--format",
    "{{json .}}",
  );
  return out.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as DockerEvent);
}

/** Intervals [from, to] in ns during which none of the bot containers was running. */
function downIntervals(events: DockerEvent[], runningAtStart: string): [number, number][] {
  const running = new Set([runningAtStart]);
  const intervals: [number, number][] = [];
  let downSince: number | null = null;
  for (const e of [...events].sort((a, b) => a.timeNano - b.timeNano)) {
    if (e.Action === "start") {
      running.add(e.Actor.ID);
      if (downSince !== null && running.size > 0) {
        intervals.push([downSince, e.timeNano]);
        downSince = null;
      }
    } else if (e.Action === "die") {
      running.delete(e.Actor.ID);
      if (running.size === 0 && downSince === null) downSince = e.timeNano;
    }
  }
  if (downSince !== null) throw new Error("the bot was still down at the end of the run");
  return intervals;
}

async function runVariant(variant: Variant, flags: string[]): Promise<DowntimeRun> {
  const initial = await freshBot();
  const since = Date.now() - 50;
  const t0 = performance.now();
  let out;
  if (variant === "baseline") {
    out = await run("bash", ["-c", `docker stop ${BOT} >/dev/null && docker start ${BOT}`]);
  } else if (variant === "naive") {
    out = await run("bash", [
      "-c",
      `set -e
docker stop ${BOT} >/dev/null
docker rm ${BOT} >/dev/null
docker pull -q ${BENCH_V2} >/dev/null
docker run -d --name ${BOT} --label ${ROLE_LABEL} ${BENCH_V2}`,
    ], { DOCKER_CONFIG: "/var/lib/hyperbot-test/docker-config" });
  } else {
    out = await cli([
      "update",
      BENCH_V2,
      ...flags,
      "--container",
      BOT,
      "--stable-seconds",
      "1",
    ]);
  }
  const wallMs = performance.now() - t0;
  if (out.code !== 0) {
    throw new Error(`${variant} run exited ${out.code}: ${out.stderr.split("\n").slice(-3)}`);
  }
  const until = Date.now() + 50;
  await sleep(60);
  const containerEvents = await eventsBetween(since, until, [
    "type=container",
    `label=${ROLE_LABEL}`,
  ]);
  const intervals = downIntervals(containerEvents, initial);
  const downtimeNs = intervals.reduce((sum, [a, b]) => sum + (b - a), 0);
  let pullInside: boolean | null = null;
  if (variant !== "baseline") {
    const pulls = (await eventsBetween(since, until, ["type=image", "event=pull"]))
      .filter((e) => (e.Actor?.ID ?? e.id ?? "").startsWith(REPO));
    if (pulls.length === 0) throw new Error(`${variant}: the daemon reported no pull of v2`);
    pullInside = pulls.some((p) => intervals.some(([a, b]) => p.timeNano >= a && p.timeNano <= b));
  }
  return { variant, downtimeMs: downtimeNs / 1e6, pullInside, wallMs };
}

const LABELS: Record<Variant, string> = {
  baseline: "baseline: `docker stop` + `docker start`",
  hyperbot: "`hyperbot-ops update` v1→v2",
  naive: "naive script: stop, rm, pull, run",
};

/** `reps` rounds of the three variants, interleaved so drift hits all of them alike. */
export async function measureDowntime(reps: number): Promise<DowntimeResult[]> {
  await prepareImages();
  const box = await makeSandbox("downtime");
  const runs: DowntimeRun[] = [];
  try {
    for (let r = 0; r < reps; r++) {
      for (const variant of ["baseline", "hyperbot", "naive"] as Variant[]) {
        const result = await runVariant(variant, box.flags);
        say(
          `downtime ${variant} run ${r + 1}/${reps}: ${result.downtimeMs.toFixed(1)} ms` +
            (result.pullInside === null ? "" : `, pull inside: ${result.pullInside}`),
        );
        runs.push(result);
      }
    }
  } finally {
    await removeBots();
    await docker("rmi", BENCH_V2);
    await Deno.remove(box.base, { recursive: true }).catch(() => {});
  }
  return (["baseline", "hyperbot", "naive"] as Variant[]).map((variant) => {
    const mine = runs.filter((r) => r.variant === variant);
    const downs = mine.map((r) => r.downtimeMs);
    const inside = mine.filter((r) => r.pullInside === true).length;
    return {
      variant,
      label: LABELS[variant],
      runs: mine,
      medianMs: median(downs),
      minMs: Math.min(...downs),
      maxMs: Math.max(...downs),
      medianWallMs: median(mine.map((r) => r.wallMs)),
      pullInside: variant === "baseline"
        ? "no pull"
        : inside === 0
        ? `never (0/${mine.length})`
        : `${inside}/${mine.length} runs`,
    };
  });
}
