import assert from "node:assert/strict";
import { join } from "node:path";
import { FileCounterStore, TextfileMetricsFile } from "../../lib/adapters/metrics_files.ts";
import { loadConfig } from "../../lib/config.ts";
import { ConfigError } from "../../lib/errors.ts";
import { MemoryLogger } from "../../lib/log.ts";
import {
  applyEvent,
  type Counters,
  emptyCounters,
  parseCounters,
} from "../../lib/metrics/counters.ts";
import {
  MAX_LABEL_CHARS,
  type MetricsSnapshot,
  renderExposition,
} from "../../lib/metrics/exposition.ts";
import {
  type CounterStore,
  type MetricsFile,
  MetricsRecorder,
  type MetricsSources,
} from "../../lib/metrics/recorder.ts";
import { metricsSources } from "../../lib/metrics/sources.ts";
import { FakeClock } from "../fakes/state.ts";

const T0 = "2026-11-29T12:00:00.000Z";

function snapshot(overrides: Partial<MetricsSnapshot> = {}): MetricsSnapshot {
  return {
    version: "0.1.0",
    counters: emptyCounters(),
    container: {
      name: "bot",
      found: true,
      running: true,
      image: "r.example/bot:2.0",
      version: "2.0",
    },
    heartbeatAt: 1_700_000_000,
    rollbackPending: false,
    ...overrides,
  };
}

/** Sample lines (not comments) of an exposition, by metric name with labels. */
function samples(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), line.slice(at + 1));
  }
  return out;
}

Deno.test("the exposition has HELP and TYPE for each family and a sample per outcome", () => {
  const text = renderExposition(snapshot());
  assert.ok(text.endsWith("\n"));
  for (
    const [name, type] of [
      ["hyperbot_ops_build_info", "gauge"],
      ["hyperbot_ops_updates_total", "counter"],
      ["hyperbot_ops_container_info", "gauge"],
      ["hyperbot_ops_health_repairs_total", "counter"],
      ["hyperbot_ops_triggers_rejected_total", "counter"],
    ]
  ) {
    assert.match(text, new RegExp(`^# HELP ${name} .+$`, "m"));
    assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, "m"));
  }
  const s = samples(text);
  assert.equal(s.get('hyperbot_ops_build_info{version="0.1.0"}'), "1");
  for (const outcome of ["updated", "unchanged", "rolled_back", "failed", "rejected"]) {
    assert.equal(s.get(`hyperbot_ops_updates_total{outcome="${outcome}"}`), "0");
  }
  assert.equal(
    s.get('hyperbot_ops_container_info{container="bot",image="r.example/bot:2.0",version="2.0"}'),
    "1",
  );
  assert.equal(s.get("hyperbot_ops_container_up"), "1");
  assert.equal(s.get("hyperbot_ops_watcher_heartbeat_timestamp_seconds"), "1700000000");
  // No update yet: no duration or downtime family at all.
  assert.doesNotMatch(text, /last_update_duration_seconds|last_update_downtime_seconds/);
});

Deno.test("label values from the container are escaped, made printable and capped: one line each", () => {
  const hostile = 'v1"} hyperbot_ops_container_up 0\n# \x1b]0;x\x07\u202e\\' + "x".repeat(5000);
  const text = renderExposition(
    snapshot({
      container: { name: "bot", found: true, running: true, image: 'img"\n', version: hostile },
    }),
  );
  const info = text.split("\n").filter((l) => l.startsWith("hyperbot_ops_container_info"));
  assert.equal(info.length, 1, "one sample line, whatever the label holds");
  const line = info[0];
  // deno-lint-ignore no-control-regex
  assert.ok(!/[\x00-\x1f\x7f\u202e]/.test(line), "no control or bidi character");
  assert.match(line, /image="img\\"\\\\n"/, "the quote escaped, the newline printable");
  // The injected sample stays inside the label value: the only up sample is the real one.
  assert.equal(text.split("\n").filter((l) => l.startsWith("hyperbot_ops_container_up")).length, 1);
  const version = line.match(/version="((?:[^"\\]|\\.)*)"/)![1];
  assert.ok(version.length < MAX_LABEL_CHARS * 3, `capped (${version.length} characters)`);
  assert.ok(version.endsWith("…"));
});

Deno.test("events add to the counters: outcomes, last times, duration and downtime, rejections, repairs", () => {
  let c = emptyCounters();
  c = applyEvent(c, {
    kind: "update",
    outcome: "rolled_back",
    finishedAt: T0,
    durationMs: 8_500,
    downtimeMs: 1_250,
  });
  c = applyEvent(c, { kind: "trigger_rejected", at: T0 });
  c = applyEvent(c, { kind: "health", at: T0, repaired: true });
  c = applyEvent(c, { kind: "health", at: T0, repaired: false });
  assert.equal(c.updates.rolled_back, 1);
  assert.equal(c.updates.rejected, 1);
  assert.equal(c.triggersRejected, 1);
  assert.equal(c.lastUpdateAt.rolled_back, Date.parse(T0) / 1000);
  assert.deepEqual(c.lastUpdate, { durationSeconds: 8.5, downtimeSeconds: 1.25 });
  assert.equal(c.healthRepairs, 1);
  assert.equal(c.healthLastRunAt, Date.parse(T0) / 1000);
  const s = samples(renderExposition(snapshot({ counters: c })));
  assert.equal(s.get("hyperbot_ops_last_update_downtime_seconds"), "1.25");
  assert.equal(s.get("hyperbot_ops_last_update_duration_seconds"), "8.5");
});

Deno.test("stored counters that are damaged or hostile start from zero, field by field", () => {
  assert.deepEqual(parseCounters(null), emptyCounters());
  assert.deepEqual(parseCounters("x"), emptyCounters());
  const c = parseCounters({
    updates: { updated: 3, failed: -1, rolled_back: 1.5, unchanged: "9", __proto__: 1 },
    lastUpdateAt: { updated: 1e9, failed: "soon" },
    lastUpdate: { durationSeconds: Infinity },
    healthRepairs: 2 ** 60,
    triggersRejected: 4,
  });
  assert.equal(c.updates.updated, 3);
  assert.equal(c.updates.failed, 0);
  assert.equal(c.updates.rolled_back, 0);
  assert.equal(c.updates.unchanged, 0);
  assert.deepEqual(c.lastUpdateAt, { updated: 1e9 });
  assert.equal(c.lastUpdate, null);
  assert.equal(c.healthRepairs, 0);
  assert.equal(c.triggersRejected, 4);
});

class MemoryStore implements CounterStore {
  counters: Counters = emptyCounters();
  writes = 0;
  failNext = false;
  private queue: Promise<void> = Promise.resolve();
  update(fn: (c: Counters) => Promise<Counters>): Promise<void> {
    const run = this.queue.then(async () => {
      if (this.failNext) {
        this.failNext = false;
        throw new Error("disk full");
      }
      this.counters = await fn(this.counters);
      this.writes++;
    });
    this.queue = run.catch(() => {});
    return run;
  }
  read() {
    return Promise.resolve(this.counters);
  }
}

class MemoryFile implements MetricsFile {
  readonly path = "/tmp/x.prom";
  texts: string[] = [];
  write(text: string) {
    this.texts.push(text);
    return Promise.resolve();
  }
}

const SOURCES: MetricsSources = {
  container: () =>
    Promise.resolve({ name: "bot", found: true, running: true, image: "r/b:1", version: "1" }),
  heartbeatAt: () => Promise.resolve(null),
  rollbackPending: () => Promise.resolve(false),
};

function recorder(file: MetricsFile | null = new MemoryFile()) {
  const clock = new FakeClock();
  const store = new MemoryStore();
  const logger = new MemoryLogger();
  const metrics = new MetricsRecorder(
    { store, sources: SOURCES, file, clock, logger, version: "0.1.0" },
    200,
  );
  return { clock, store, logger, metrics };
}

Deno.test("events reach the counters and the file within the delay, several in one write", async () => {
  const file = new MemoryFile();
  const { clock, store, metrics } = recorder(file);
  metrics.record({ kind: "trigger_rejected", at: T0 });
  metrics.record({ kind: "trigger_rejected", at: T0 });
  await clock.advance(199);
  assert.equal(file.texts.length, 0, "gathered for the delay");
  await clock.advance(1);
  await metrics.flush();
  assert.equal(file.texts.length, 1, "one write for both");
  assert.equal(store.counters.triggersRejected, 2);
  assert.equal(samples(file.texts[0]).get("hyperbot_ops_triggers_rejected_total"), "2");
});

Deno.test("without a metrics file the counters are still kept; a refresh writes nothing", async () => {
  const { store, metrics } = recorder(null);
  await metrics.refresh();
  assert.equal(store.writes, 0);
  metrics.record({ kind: "health", at: T0, repaired: true });
  await metrics.flush();
  assert.equal(store.counters.healthRepairs, 1);
});

Deno.test("a failed write keeps the events for the next one and is logged once", async () => {
  const file = new MemoryFile();
  const { store, logger, metrics } = recorder(file);
  store.failNext = true;
  metrics.record({ kind: "trigger_rejected", at: T0 });
  await metrics.flush();
  assert.equal(store.counters.triggersRejected, 0);
  assert.equal(logger.lines.filter((r) => r.level === "error").length, 1);
  void metrics.refresh();
  await metrics.flush();
  assert.equal(store.counters.triggersRejected, 1, "counted on the next write, once");
});

Deno.test("counters in stateDir survive a new process and concurrent writers lose nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Separate stores are separate open files: their flocks exclude each other as two
    // processes' would.
    const writers = Array.from({ length: 8 }, () => new FileCounterStore(dir));
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        writers[i % writers.length].update(async (c) => {
          await new Promise((r) => setTimeout(r, 1)); // a render in between, as for real
          return applyEvent(c, { kind: "trigger_rejected", at: T0 });
        })),
    );
    const again = new FileCounterStore(dir);
    assert.equal((await again.read()).triggersRejected, 40);
    assert.equal((await Deno.stat(join(dir, "metrics.json"))).mode! & 0o777, 0o640);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the textfile is replaced atomically with mode 0644 and its new folders are 0755", async () => {
  const dir = await Deno.makeTempDir();
  const previous = Deno.umask(0o027);
  try {
    const path = join(dir, "node_exporter", "textfile_collector", "hyperbot_ops.prom");
    const file = new TextfileMetricsFile(path);
    await file.write("a 1\n");
    await file.write("a 2\n");
    assert.equal(await Deno.readTextFile(path), "a 2\n");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o644);
    assert.equal((await Deno.stat(join(dir, "node_exporter"))).mode! & 0o777, 0o755);
    assert.deepEqual([...Deno.readDirSync(join(path, ".."))].map((e) => e.name), [
      "hyperbot_ops.prom",
    ]);
  } finally {
    Deno.umask(previous);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a rollback is pending only when the journal holds an unfinished update and nobody holds the lock", async () => {
  const journal = { id: "upd-1", finished: false } as never;
  const make = (j: unknown, holder: unknown) =>
    metricsSources({
      docker: { inspectContainer: () => Promise.reject(new Error("no docker")) },
      heartbeat: { read: () => Promise.resolve(null) },
      journal: { read: () => Promise.resolve(j as never) },
      lock: { holder: () => Promise.resolve(holder as never) },
    }, "bot");
  assert.equal(await make(journal, null).rollbackPending(), true);
  assert.equal(await make(journal, { pid: 1 }).rollbackPending(), false);
  assert.equal(await make({ finished: true }, null).rollbackPending(), false);
  assert.equal(await make(null, null).rollbackPending(), false);
  const container = await make(null, null).container();
  assert.equal(container.found, false, "Docker away: no container");
  assert.equal(container.running, false);
});

Deno.test("metricsFile is off by default and must be an absolute .prom path outside dataDir", () => {
  const load = (metricsFile?: string) =>
    loadConfig({
      env: {},
      readTextFile: () => null,
      flags: { dataDir: "/opt/bot/data", metricsFile },
    });
  assert.equal(load().metricsFile, "");
  assert.equal(
    load("/var/lib/node_exporter/textfile_collector/hyperbot_ops.prom").metricsFile,
    "/var/lib/node_exporter/textfile_collector/hyperbot_ops.prom",
  );
  assert.throws(() => load("relative.prom"), ConfigError);
  assert.throws(() => load("/var/lib/x.txt"), ConfigError);
  assert.throws(() => load("/opt/bot/data/x.prom"), /inside 'dataDir'/);
});
