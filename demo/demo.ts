/**
 * `deno task demo`: the whole system working in a sandbox, narrated, in about a minute.
 *
 * Needs a Docker daemon, /bin/busybox (Debian: busybox-static) and the `docker-registry`
 * binary (Debian: docker-registry). Nothing from the internet.
 *
 *   1. a throwaway registry on a free loopback port, in a temporary folder: hyperbot-ops always pulls
 *      before it updates (so the image is complete before the bot is stopped), and a pull
 *      needs a registry; images that exist only locally cannot be pulled
 *   2. three tiny images built FROM scratch with busybox: bot:1, bot:2 and bot:broken
 *   3. a demo bot container on bot:1, its data folder mounted at /app/data as on a server
 *   4. `hyperbot-ops watch` on a temporary base folder (its own config file)
 *   5. the bot writes a trigger for bot:2 → the update happens; `hyperbot-ops status`
 *   6. the bot writes a trigger for bot:broken → it crashes → rolled back to bot:2
 *   7. clean-up: containers, images, registry, folder (also on Ctrl-C)
 */

import { RUN_FLAGS } from "../lib/runtime_flags.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type DemoRegistry, startDemoRegistry } from "./registry.ts";

/** The demo images' repository, on the registry's port (set once the registry runs). */
let REPO = "";
const BOT = "hyperbot-demo-bot";
const BASE_IMAGE = "hyperbot-demo/base:busybox";
const BUSYBOX = "/bin/busybox";
const MAIN_TS = fileURLToPath(new URL("../main.ts", import.meta.url));

const color = Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR");
const paint = (code: string) => (text: string) => color ? `\x1b[${code}m${text}\x1b[0m` : text;
const bold = paint("1");
const dim = paint("2");
const green = paint("32");
const red = paint("31");

let stepNo = 0;
function step(title: string) {
  stepNo++;
  console.log(`\n${bold(`▶ ${stepNo}. ${title}`)}`);
}
function say(text: string) {
  console.log(`  ${text}`);
}
function show(text: string, prefix = "  │ ") {
  for (const line of text.trimEnd().split("\n")) console.log(dim(prefix + line));
}

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, args: string[]): Promise<Output> {
  const out = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout).trim(),
    stderr: d.decode(out.stderr).trim(),
  };
}

async function docker(...args: string[]): Promise<string> {
  const out = await run("docker", args);
  if (out.code !== 0) throw new Error(`docker ${args.join(" ")}: ${out.stderr}`);
  return out.stdout;
}

/** The argv that runs hyperbot-ops: HYPERBOT_OPS_BIN (compiled), else deno run main.ts. */
function cliCommand(): string[] {
  const bin = Deno.env.get("HYPERBOT_OPS_BIN");
  if (bin) return [bin];
  return [Deno.execPath(), "run", "--quiet", ...RUN_FLAGS, MAIN_TS];
}

async function hyperbotOps(args: string[]): Promise<Output> {
  const [cmd, ...prefix] = cliCommand();
  return await run(cmd, [...prefix, ...args]);
}

// ---- what has to be undone ------------------------------------------------------------------

let base = "";
let registry: DemoRegistry | null = null;
let watch: Deno.ChildProcess | null = null;
let cleaning: Promise<void> | null = null;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    step("Clean up");
    if (watch) {
      try {
        watch.kill("SIGTERM");
      } catch { /* gone */ }
      await watch.status;
      say("watcher stopped (SIGTERM: it takes no new trigger and exits)");
    }
    await run("docker", ["rm", "-f", BOT, `${BOT}-previous`, `${BOT}-updating`]);
    say(`container ${BOT} removed`);
    if (REPO) {
      const images = (await run("docker", ["images", "-q", "--filter", `reference=${REPO}`]))
        .stdout;
      await run("docker", ["rmi", "-f", ...new Set(images.split("\n").filter(Boolean))]);
    }
    await run("docker", ["rmi", BASE_IMAGE]);
    say("demo images removed");
    if (registry) {
      await registry.stop();
      say(`registry on ${registry.address} stopped`);
    }
    if (base) {
      await Deno.remove(base, { recursive: true }).catch(() => {});
      say(`${base} removed`);
    }
  })();
  return cleaning;
}

// ---- the steps --------------------------------------------------------------------------------

async function preflight() {
  step("Check what the demo needs");
  const version = await run("docker", ["version", "--format", "{{.Server.Version}}"]).catch(
    () => ({ code: 1, stdout: "", stderr: "the docker command is not installed" }),
  );
  if (version.code !== 0) {
    throw new Error(`the Docker daemon does not answer: ${version.stderr}`);
  }
  say(`Docker daemon ${version.stdout}`);
  try {
    await Deno.stat(BUSYBOX);
  } catch {
    throw new Error(`${BUSYBOX} is missing; install it: apt-get install busybox-static`);
  }
  const reg = await run("sh", ["-c", "command -v docker-registry"]);
  if (reg.code !== 0) {
    throw new Error(
      "the docker-registry binary is missing; install it: apt-get install docker-registry",
    );
  }
  const leftover = await run("docker", ["inspect", BOT]);
  if (leftover.code === 0) {
    throw new Error(
      `a container named ${BOT} exists (an earlier demo?); remove it: docker rm -f ${BOT}`,
    );
  }
  say(`${BUSYBOX}, docker-registry: ok`);
}

async function startRegistry() {
  step("Start a throwaway registry on a free loopback port");
  say("hyperbot-ops pulls the new image completely before it stops the bot, so it needs a");
  say("registry to pull from. This one lives in the demo's temporary folder and has no auth.");
  registry = await startDemoRegistry(base);
  REPO = `${registry.address}/hyperbot-demo/bot`;
  say(`registry up on ${registry.address} (pid ${registry.process.pid})`);
}

const BOT_CMD = (version: string) =>
  `CMD trap 'echo "bot ${version}: stopping"; exit 0' TERM; \\
    echo "bot ${version}: trading"; \\
    while true; do sleep 1 & wait $!; done`;

async function buildImages() {
  step("Build three tiny bot images FROM scratch with busybox");
  const dir = join(base, "build");
  await Deno.mkdir(dir, { recursive: true });
  await Deno.copyFile(BUSYBOX, join(dir, "busybox"));
  await Deno.writeTextFile(
    join(dir, "Dockerfile"),
    `FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n`,
  );
  await docker("build", "-q", "-t", BASE_IMAGE, dir);
  const variants: Record<string, string> = {
    "1": BOT_CMD("1"),
    "2": BOT_CMD("2"),
    // Starts, then dies a second later: what a bad release looks like.
    broken:
      `CMD echo "bot broken: starting"; sleep 1; echo "bot broken: fatal: bad config"; exit 1`,
  };
  for (const [tag, cmd] of Object.entries(variants)) {
    await Deno.writeTextFile(
      join(dir, "Dockerfile"),
      `FROM ${BASE_IMAGE}\nLABEL org.opencontainers.image.version="${tag}"\n` +
        `ENV BOT_VERSION=${tag}\nWORKDIR /app\n${cmd}\n`,
    );
    await docker("build", "-q", "-t", `${REPO}:${tag}`, dir);
    await docker("push", `${REPO}:${tag}`);
    say(`${REPO}:${tag} built and pushed`);
  }
}

async function startBot(dataDir: string) {
  step(`Start the demo bot on ${REPO}:1`);
  await docker(
    "run",
    "-d",
    "--name",
    BOT,
    "--restart",
    "unless-stopped",
    "-v",
    `${dataDir}:/app/data`,
    "-e",
    "BOT_SETTING=kept-across-updates",
    `${REPO}:1`,
  );
  await sleep(500);
  say(`docker run -d --name ${BOT} -v ${dataDir}:/app/data ${REPO}:1`);
  show(await docker("logs", BOT), "  │ bot log: ");
}

function pipeLines(stream: ReadableStream<Uint8Array>, prefix: string) {
  (async () => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) if (line.trim()) console.log(dim(prefix + line));
    }
  })().catch(() => {});
}

async function startWatch(configFile: string, stateDir: string) {
  step("Start the watcher: hyperbot-ops watch (what systemd runs on a server)");
  say(`hyperbot-ops watch --config ${configFile}`);
  show(await Deno.readTextFile(configFile), "  │ config: ");
  const [cmd, ...prefix] = cliCommand();
  watch = new Deno.Command(cmd, {
    args: [...prefix, "watch", "--config", configFile],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  pipeLines(watch.stderr, "  │ watch: ");
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    try {
      const hb = JSON.parse(await Deno.readTextFile(join(stateDir, "heartbeat.json")));
      if (hb.state === "idle") {
        say(green(`watcher idle (pid ${hb.pid}), waiting for a trigger`));
        return;
      }
    } catch { /* not yet */ }
    await sleep(50);
  }
  throw new Error("the watcher did not become idle within 20 s");
}

interface Status {
  requestId?: string;
  state: string;
  image: string | null;
  previousImage: string | null;
  error: string | null;
  finishedAt: string | null;
  steps: { name: string; ok: boolean | null }[];
}

async function trigger(dataDir: string, image: string, id: string): Promise<Status> {
  const json = JSON.stringify({ image, id });
  say(`the bot's web page asks for ${image}; inside the container it writes its trigger:`);
  say(`docker exec ${BOT} sh -c 'echo '\\''${json}'\\'' > /app/data/.update_trigger'`);
  const t0 = performance.now();
  await docker("exec", BOT, "sh", "-c", `echo '${json}' > /app/data/.update_trigger`);
  const triggerPath = join(dataDir, ".update_trigger");
  let claimedMs: number | null = null;
  let lastState = "";
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (claimedMs === null) {
      try {
        await Deno.lstat(triggerPath);
      } catch {
        claimedMs = performance.now() - t0;
        say(green(`claimed by the watcher after ${claimedMs.toFixed(0)} ms`));
      }
    }
    try {
      const status = JSON.parse(
        await Deno.readTextFile(join(dataDir, ".update_status.json")),
      ) as Status;
      if (status.requestId === id) {
        if (status.state !== lastState) {
          say(`status file: ${bold(status.state)}`);
          lastState = status.state;
        }
        if (status.finishedAt) return status;
      }
    } catch { /* being replaced */ }
    await sleep(25);
  }
  throw new Error(`no result for trigger ${id} within 90 s`);
}

async function showContainer() {
  const [info] = JSON.parse(await docker("inspect", BOT));
  const setting = (info.Config.Env as string[]).find((e) => e.startsWith("BOT_SETTING="));
  show(
    `${BOT}  image=${info.Config.Image}  running=${info.State.Running}  ${setting} (kept)`,
    "  │ docker: ",
  );
}

async function main(): Promise<number> {
  console.log(bold("hyperbot-ops demo: a safe update and a rollback, in a sandbox"));
  const onInterrupt = () => {
    console.log(red("\ninterrupted"));
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  Deno.addSignalListener("SIGTERM", onInterrupt);
  try {
    await preflight();
    base = await Deno.makeTempDir({ prefix: "hyperbot-demo-" });
    const dataDir = join(base, "data");
    const stateDir = join(base, "state");
    await Deno.mkdir(dataDir, { recursive: true });
    say(`sandbox: ${base}`);

    await startRegistry();
    await buildImages();
    await startBot(dataDir);

    const configFile = join(base, "config.json");
    await Deno.writeTextFile(
      configFile,
      JSON.stringify(
        {
          baseDir: base,
          stateDir,
          container: BOT,
          service: "hyperbot-demo-monitor",
          allowedImages: [REPO],
          stableSeconds: 3,
        },
        null,
        2,
      ) + "\n",
    );
    await startWatch(configFile, stateDir);

    step("Update to bot:2 through a trigger");
    const ok = await trigger(dataDir, `${REPO}:2`, "demo-update-1");
    say(
      ok.state === "succeeded"
        ? green(`✅ ${ok.previousImage} → ${ok.image}`)
        : red(`unexpected: ${ok.state} ${ok.error ?? ""}`),
    );
    say(`steps: ${ok.steps.map((s) => s.name).join(" → ")}`);
    await showContainer();
    show(await docker("logs", BOT), "  │ bot log: ");

    step("hyperbot-ops status (what an operator looks at)");
    say(`hyperbot-ops status --config ${configFile}`);
    const status = await hyperbotOps(["status", "--config", configFile, "--lines", "3"]);
    show(status.stdout);
    say(
      dim(
        "(the service and cron lines are ❌ here: the demo runs the watcher itself, not systemd)",
      ),
    );

    step("A broken release: bot:broken crashes a second after it starts");
    const bad = await trigger(dataDir, `${REPO}:broken`, "demo-update-2");
    say(
      bad.state === "rolled_back"
        ? green(`✅ rolled back: the bot runs ${bad.previousImage ?? "the old image"} again`)
        : red(`unexpected: ${bad.state}`),
    );
    say(`why: ${bad.error}`);
    say(
      `steps: ${bad.steps.map((s) => `${s.name}${s.ok === false ? "(failed)" : ""}`).join(" → ")}`,
    );
    await showContainer();
    const updateLog = await Deno.readTextFile(join(base, "logs", "update.log"));
    show(
      updateLog.trimEnd().split("\n").filter((l) => /rolled|rollback|verify|failed/i.test(l))
        .slice(-4).join("\n"),
      "  │ update.log: ",
    );

    const pass = ok.state === "succeeded" && bad.state === "rolled_back";
    await cleanup();
    console.log(
      `\n${
        pass ? green(bold("Demo finished: updated, then rolled back.")) : red(bold("Demo FAILED"))
      }`,
    );
    return pass ? 0 : 1;
  } catch (err) {
    console.error(red(`\ndemo: error: ${(err as Error).message}`));
    await cleanup();
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    Deno.removeSignalListener("SIGTERM", onInterrupt);
  }
}

if (import.meta.main) {
  Deno.exit(await main());
}
