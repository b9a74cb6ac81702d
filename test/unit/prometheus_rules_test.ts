/**
 * The alerting rules shipped in install/prometheus/ against the real promtool (Debian's
 * `prometheus` package; scripts/test-env.sh installs it). Fails loudly without it.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

const DIR = fileURLToPath(new URL("../../install/prometheus/", import.meta.url));
const RULES = "hyperbot-ops.rules.yml";
const TESTS = "hyperbot-ops.rules.test.yml";

async function promtool(args: string[], cwd = DIR) {
  let out;
  try {
    out = await new Deno.Command("promtool", { args, cwd, stdout: "piped", stderr: "piped" })
      .output();
  } catch (err) {
    throw new Error(
      `promtool is needed and was not found (${err}): run 'bash scripts/test-env.sh' ` +
        "(it installs Debian's prometheus package)",
    );
  }
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test("the shipped alerting rules pass 'promtool check rules'", async () => {
  const r = await promtool(["check", "rules", RULES]);
  assert.equal(r.code, 0, r.text);
  assert.match(r.text, /SUCCESS: 5 rules found/);
});

Deno.test("every alerting rule has a unit test, and 'promtool test rules' passes them all", async () => {
  const rules = parse(await Deno.readTextFile(DIR + RULES));
  const tests = parse(await Deno.readTextFile(DIR + TESTS));
  const alerts: string[] = rules.groups.flatMap((g: { rules: { alert: string }[] }) =>
    g.rules.map((r) => r.alert)
  );
  const tested = new Set<string>();
  for (const t of tests.tests) {
    for (const a of t.alert_rule_test ?? []) {
      if ((a.exp_alerts ?? []).length > 0) tested.add(a.alertname);
    }
  }
  assert.deepEqual([...alerts].sort(), [...tested].sort(), "each alert is seen firing in a test");
  const r = await promtool(["test", "rules", TESTS]);
  assert.equal(r.code, 0, r.text);
  assert.match(r.text, /SUCCESS/);
});

Deno.test("a broken rule fails its promtool unit test (the tests can fail)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The watcher alert waiting 15 minutes instead of 5 would miss the dead watcher.
    const rules = (await Deno.readTextFile(DIR + RULES)).replace("> 300", "> 900");
    await Deno.writeTextFile(`${dir}/${RULES}`, rules);
    await Deno.copyFile(DIR + TESTS, `${dir}/${TESTS}`);
    const r = await promtool(["test", "rules", TESTS], dir);
    assert.notEqual(r.code, 0);
    assert.match(r.text, /HyperbotOpsWatcherDown/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
