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
  /** Test files that exercise them; missing ones are skipped. */
  tests: string[];
}

const GROUPS: Group[] = [
  {
    name: "update",
    mutate: ["lib/update/"],
    tests: [
      "test/unit/update_test.ts",
      "test/unit/update_promises_test.ts",
      "test/unit/verify_test.ts",
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
      "test/unit/files_test.ts",
      "test/unit/data_dir_test.ts",
      "test/unit/removal_walk_test.ts",
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
  },
});
const root = resolve(values.root ?? join(here, ".."));
const out = resolve(values.out ?? join(here, "REPORT.md"));
const chosen = values.group?.length
  ? GROUPS.filter((g) => values.group!.includes(g.name))
  : GROUPS;
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
  const mutate = group.mutate.flatMap((f) =>
    f.endsWith("/") ? tsFilesIn(f) : [f]
  )
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
  const config = {
    testRunner: "command",
    commandRunner: {
      command: `deno test --allow-all --no-check ${tests.join(" ")}`,
    },
    mutate,
    // Copied into the sandbox: the code and the tests, nothing bulky.
    ignorePatterns: [
      "/mutation",
      "/dist",
      "/.ci-work",
      "/bench",
      "/demo",
      "/docs",
      "/install",
    ],
    concurrency,
    reporters: ["json", "progress"],
    jsonReporter: { fileName: reportFile },
    tempDirName: ".stryker-tmp",
    cleanTempDir: true,
    timeoutMS: 30_000,
    logLevel: "warn",
  };
  const configFile = join(workDir, `${group.name}.config.json`);
  await Deno.writeTextFile(configFile, JSON.stringify(config, null, 2));
  console.error(
    `group ${group.name}: mutating ${mutate.join(", ")} against ${
      tests.join(", ")
    }`,
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
  const report = JSON.parse(
    await Deno.readTextFile(reportFile),
  ) as StrykerReport;
  results.push({
    group,
    report,
    seconds: Math.round((Date.now() - started) / 1000),
  });
}
await Deno.remove(workDir, { recursive: true });

await Deno.writeTextFile(out, render(results));
console.error(`wrote ${relative(Deno.cwd(), out) || out}`);

function tsFilesIn(dir: string): string[] {
  if (!existsSync(join(root, dir))) return [];
  return [...Deno.readDirSync(join(root, dir))]
    .filter((e) =>
      e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")
    )
    .map((e) => `${dir}${e.name}`)
    .sort();
}

function counts(mutants: Mutant[]) {
  const detected =
    mutants.filter((m) => m.status === "Killed" || m.status === "Timeout")
      .length;
  const survived = mutants.filter((m) =>
    m.status === "Survived" || m.status === "NoCoverage"
  );
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
  for (const { group, report, seconds } of runs) {
    for (const [file, { source, mutants }] of Object.entries(report.files)) {
      const c = counts(mutants);
      detected += c.detected;
      valid += c.valid;
      table.push(
        `| ${group.name} | \`${file}\` | ${
          c.score.toFixed(1)
        } % | ${c.detected} | ` +
          `${c.survived.length} | ${c.invalid} | ${seconds} s |`,
      );
      const text = source.split("\n");
      for (
        const m of c.survived.sort((a, b) =>
          a.location.start.line - b.location.start.line
        )
      ) {
        const line = m.location.start.line;
        const original = text[line - 1]?.trim() ?? "";
        const replacement = (m.replacement ?? "").replace(/\s+/g, " ").slice(
          0,
          120,
        );
        survivors.push(
          `- \`${file}:${line}\` ${m.mutatorName}: \`${
            original.slice(0, 120)
          }\` → \`${replacement}\``,
        );
      }
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
    `**Total: ${
      score.toFixed(1)
    } %** (${detected} of ${valid} mutants detected)`,
    "",
    "| group | file | score | detected | survived | not counted | group time |",
    "| ----- | ---- | ----- | -------- | -------- | ----------- | ---------- |",
    ...table,
    "",
    `## Surviving mutants (${survivors.length})`,
    "",
    ...survivors,
    "",
  );
  return lines.join("\n");
}
