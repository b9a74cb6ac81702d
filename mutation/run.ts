/**
 * `deno task mutation`: StrykerJS over `deno test` on the modules that carry the README's
 * promises, one Stryker run per group (a group's mutants run only the test files that exercise
 * it, so a run takes minutes, not hours), then one report: mutation/REPORT.md (score per group
 * and file, every surviving mutant with its line).
 *
 *   deno task mutation                      all groups
 *   deno task mutation --group update       one group (repeat the flag for more)
 *   deno task mutation --root DIR           measure another checkout (e.g. an older commit)
 *   deno task mutation --out FILE           write the report elsewhere
 *   deno task mutation --only FILE          mutate only this file of the chosen groups (repeat)
 *   deno task mutation --concurrency N      run N mutants at once (default 1)
 *   deno task mutation --since OLD.md       run again only the mutants OLD.md's run left alive
 *   deno task mutation --timeout S          a mutant's run times out after 1.5 × the clean run + S
 *                                           seconds (default 30)
 *
 * Each run keeps Stryker's JSON next to the report (REPORT.<group>.json). With --since, a file
 * whose source is unchanged since that run has only its surviving mutants run again, and the
 * score is taken over the old run's mutants with the new verdicts merged in: a mutant killed
 * before stays killed when tests were only added (a weakened test is a change this cannot see:
 * run without --since to be sure). A file that changed is mutated in full.
 *
 * Stryker runs with concurrency 1 by default (the machine is shared) and its command runner: each mutant
 * is one `deno test` process with __STRYKER_ACTIVE_MUTANT__ set. Stryker is installed from
 * mutation/package-lock.json into mutation/node_modules on first use (npm ci).
 */

import { existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

interface Group {
  name: string;
  /**
   * Files to mutate, relative to the checkout; a name ending in "/" is every .ts file in that
   * folder. Missing ones are skipped (code moves).
   */
  mutate: string[];
  /**
   * Test files that exercise them, fastest first: they run in this order with --fail-fast, so a
   * mutant the quick tests kill never waits for the slow ones. Missing ones are skipped.
   */
  tests: string[];
}

const GROUPS: Group[] = [
  {
    name: "update",
    mutate: ["lib/update/"],
    tests: [
      "test/unit/update_results_test.ts",
      "test/unit/update_test.ts",
      "test/unit/update_promises_test.ts",
      "test/unit/update_mutants_test.ts",
      "test/unit/verify_test.ts",
      "test/unit/recover_mutants_test.ts",
      "test/unit/compose_pin_test.ts",
      "test/unit/recreate_test.ts",
      "test/unit/update_records_test.ts",
    ],
  },
  {
    name: "trigger",
    // The trigger's parsing, and the data-folder boundary the trigger is read through.
    mutate: [
      "lib/watch/trigger.ts",
      "lib/adapters/trigger_inbox.ts",
      "lib/adapters/data_dir.ts",
    ],
    tests: [
      "test/unit/trigger_test.ts",
      "test/unit/trigger_docs_test.ts",
      "test/unit/trigger_lease_test.ts",
      "test/unit/trigger_inbox_mutants_test.ts",
      "test/unit/data_dir_mutants_test.ts",
      "test/unit/removal_mutants_test.ts",
      "test/unit/watch_left_test.ts",
      "test/unit/watch_test.ts",
      "test/unit/removal_walk_test.ts",
      "test/unit/files_test.ts",
      "test/unit/data_dir_test.ts",
    ],
  },
  {
    name: "image_ref",
    mutate: ["lib/image_ref.ts"],
    tests: ["test/unit/image_ref_test.ts", "test/unit/trigger_test.ts"],
  },
];

interface Mutant {
  id: string;
  mutatorName: string;
  replacement?: string;
  status: string;
  location: {
    start: { line: number; column: number };
    end: { line: number; column: number };
  };
}

interface StrykerReport {
  files: Record<string, { source: string; mutants: Mutant[] }>;
}

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  args: Deno.args,
  options: {
    group: { type: "string", multiple: true },
    root: { type: "string" },
    out: { type: "string" },
    only: { type: "string", multiple: true },
    concurrency: { type: "string" },
    since: { type: "string" },
    timeout: { type: "string" },
  },
});
const root = resolve(values.root ?? join(here, ".."));
const out = resolve(values.out ?? join(here, "REPORT.md"));
const chosen = values.group?.length ? GROUPS.filter((g) => values.group!.includes(g.name)) : GROUPS;
const concurrency = Number(values.concurrency ?? "1");
if (!Number.isInteger(concurrency) || concurrency < 1) {
  console.error(
    `--concurrency wants a whole number of at least 1, not '${values.concurrency}'`,
  );
  Deno.exit(2);
}
if (chosen.length === 0) {
  console.error(
    `unknown group; groups: ${GROUPS.map((g) => g.name).join(", ")}`,
  );
  Deno.exit(2);
}

const stryker = join(
  here,
  "node_modules",
  "@stryker-mutator",
  "core",
  "bin",
  "stryker.js",
);
if (!existsSync(stryker)) {
  console.error("installing StrykerJS into mutation/node_modules (npm ci)");
  const npm = await new Deno.Command("npm", {
    args: ["ci", "--no-audit", "--no-fund"],
    cwd: here,
  }).spawn().status;
  if (!npm.success) Deno.exit(1);
}

const workDir = await Deno.makeTempDir({ prefix: "hyperbot-mutation-" });
const results: { group: Group; report: StrykerReport; seconds: number }[] = [];
for (const group of chosen) {
  const mutate = group.mutate.flatMap((f) => f.endsWith("/") ? tsFilesIn(f) : [f])
    .filter((f) => existsSync(join(root, f)))
    .filter((f) => !values.only?.length || values.only.includes(f));
  const tests = group.tests.filter((f) => existsSync(join(root, f)));
  if (mutate.length === 0 || tests.length === 0) {
    console.error(
      `group ${group.name}: nothing to mutate or no tests in ${root}; skipped`,
    );
    continue;
  }
  const reportFile = join(workDir, `${group.name}.json`);
  const previous = values.since ? readPrevious(values.since, group) : undefined;
  const patterns = mutate.flatMap((file) => {
    const old = previous?.files[file];
    if (!old || old.source !== Deno.readTextFileSync(join(root, file))) {
      return [file];
    }
    // Unchanged: only the survivors' lines (none left: nothing to run for this file).
    return old.mutants.filter((m) => m.status === "Survived" || m.status === "NoCoverage")
      // Whole lines: Stryker drops a mutant whose span is not strictly inside a column range,
      // so a survivor spanning a whole expression would silently not run again.
      .map((m) => `${file}:${m.location.start.line}-${m.location.end.line}`);
  }).filter((p, i, all) => all.indexOf(p) === i);
  if (patterns.length === 0) {
    console.error(
      `group ${group.name}: no survivors left in ${values.since}; nothing to run`,
    );
    results.push({ group, report: previous!, seconds: 0 });
    continue;
  }
  const config = {
    testRunner: "command",
    commandRunner: {
      command: `deno test --allow-all --no-check --fail-fast ${tests.join(" ")}`,
    },
    mutate: patterns,
    // Copied into the sandbox: the code, the tests and the docs some tests read; nothing bulky.
    ignorePatterns: [
      "/mutation",
      "/dist",
      "/.ci-work",
      "/bench",
      "/demo",
      "/install",
    ],
    concurrency,
    reporters: ["json", "progress"],
    jsonReporter: { fileName: reportFile },
    tempDirName: ".stryker-tmp",
    cleanTempDir: true,
    // A mutant that hangs (a FIFO opened for reading, a walk that never ends) times out after
    // 1.5 × the clean run + this; the runs are serial within a slot, so load barely moves it.
    timeoutMS: Number(values.timeout ?? "30") * 1000,
    logLevel: "warn",
  };
  const configFile = join(workDir, `${group.name}.config.json`);
  await Deno.writeTextFile(configFile, JSON.stringify(config, null, 2));
  console.error(
    `group ${group.name}: mutating ${mutate.join(", ")} against ${tests.join(", ")}`,
  );
  const started = Date.now();
  const run = await new Deno.Command("node", {
    args: [stryker, "run", configFile],
    cwd: root,
    env: { NO_COLOR: "1" },
  }).spawn().status;
  if (!run.success) {
    console.error(`group ${group.name}: stryker failed (exit ${run.code})`);
    Deno.exit(1);
  }
  const fresh = JSON.parse(
    await Deno.readTextFile(reportFile),
  ) as StrykerReport;
  const report = previous ? merge(previous, fresh, mutate) : fresh;
  await Deno.writeTextFile(jsonFor(out, group), JSON.stringify(report));
  results.push({
    group,
    report,
    seconds: Math.round((Date.now() - started) / 1000),
  });
}
await Deno.remove(workDir, { recursive: true });

await Deno.writeTextFile(out, render(results));
console.error(`wrote ${relative(Deno.cwd(), out) || out}`);

/** Where a report's Stryker JSON for one group is kept: REPORT.md → REPORT.update.json. */
function jsonFor(report: string, group: Group): string {
  return report.replace(/\.md$/, "") + `.${group.name}.json`;
}

function readPrevious(report: string, group: Group): StrykerReport | undefined {
  const file = jsonFor(resolve(report), group);
  if (!existsSync(file)) {
    console.error(`--since: no ${file}; group ${group.name} runs in full`);
    return undefined;
  }
  return JSON.parse(Deno.readTextFileSync(file)) as StrykerReport;
}

/**
 * The old run's mutants with the new run's verdicts: a file mutated in full takes the new
 * mutants as they are; an unchanged file keeps its old mutants, each survivor replaced by the
 * mutant at the same place with the same mutator and replacement from the new run.
 */
function merge(
  old: StrykerReport,
  fresh: StrykerReport,
  files: string[],
): StrykerReport {
  const key = (m: Mutant) =>
    `${m.location.start.line}:${m.location.start.column}:${m.location.end.line}:` +
    `${m.location.end.column}:${m.mutatorName}:${m.replacement}`;
  const merged: StrykerReport = { files: {} };
  for (const file of files) {
    const before = old.files[file];
    const now = fresh.files[file];
    if (!before || (now && now.source !== before.source)) {
      if (now) merged.files[file] = now;
      continue;
    }
    const verdicts = new Map((now?.mutants ?? []).map((m) => [key(m), m]));
    merged.files[file] = {
      source: before.source,
      mutants: before.mutants.map((m) => verdicts.get(key(m)) ?? m),
    };
  }
  return merged;
}

function tsFilesIn(dir: string): string[] {
  if (!existsSync(join(root, dir))) return [];
  return [...Deno.readDirSync(join(root, dir))]
    .filter((e) => e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts"))
    .map((e) => `${dir}${e.name}`)
    .sort();
}

function counts(mutants: Mutant[]) {
  const detected = mutants.filter((m) => m.status === "Killed" || m.status === "Timeout")
    .length;
  const survived = mutants.filter((m) => m.status === "Survived" || m.status === "NoCoverage");
  const valid = detected + survived.length;
  const score = valid ? (100 * detected) / valid : 100;
  return { detected, survived, valid, score, invalid: mutants.length - valid };
}

function render(runs: typeof results): string {
  const lines: string[] = [];
  let detected = 0;
  let valid = 0;
  const table: string[] = [];
  const survivors: string[] = [];
  const timeouts: string[] = [];
  for (const { group, report, seconds } of runs) {
    for (const [file, { source, mutants }] of Object.entries(report.files)) {
      const c = counts(mutants);
      detected += c.detected;
      valid += c.valid;
      table.push(
        `| ${group.name} | \`${file}\` | ${c.score.toFixed(1)} % | ${c.detected} | ` +
          `${c.survived.length} | ${c.invalid} | ${seconds} s |`,
      );
      const text = source.split("\n");
      const describe = (m: Mutant) => {
        const line = m.location.start.line;
        const original = (text[line - 1]?.trim() ?? "").slice(0, 120);
        const replacement = (m.replacement ?? "").replace(/\s+/g, " ").slice(
          0,
          120,
        );
        return `- \`${file}:${line}\` ${m.mutatorName}: \`${original}\` → \`${replacement}\``;
      };
      const byLine = (a: Mutant, b: Mutant) => a.location.start.line - b.location.start.line;
      survivors.push(...c.survived.sort(byLine).map(describe));
      timeouts.push(
        ...mutants.filter((m) => m.status === "Timeout").sort(byLine).map(
          describe,
        ),
      );
    }
  }
  const score = valid ? (100 * detected) / valid : 100;
  lines.push(
    "# Mutation testing report",
    "",
    "Written by `deno task mutation` (StrykerJS command runner over `deno test`; see",
    "mutation/run.ts for the groups). Score = killed (or timed out) / (killed + survived + no",
    "coverage); mutants that do not compile or crash the test process are not counted.",
    "",
    `Checkout: \`${root}\``,
    "",
    `**Total: ${score.toFixed(1)} %** (${detected} of ${valid} mutants detected)`,
    "",
    "| group | file | score | detected | survived | not counted | group time |",
    "| ----- | ---- | ----- | -------- | -------- | ----------- | ---------- |",
    ...table,
    "",
    `## Surviving mutants (${survivors.length})`,
    "",
    ...survivors,
    "",
    `## Timed out, counted as detected (${timeouts.length})`,
    "",
    "A mutant that makes the tests hang (a loop that never ends) times out; check that none of",
    "these is a slow machine instead (run it again on an idle one).",
    "",
    ...timeouts,
    "",
  );
  return lines.join("\n");
}
