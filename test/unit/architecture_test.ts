/**
 * The layout's two rules, checked over the source: no file under lib/ imports from outside
 * lib/ (nothing runs back up to install/, test/ or main.ts), and only lib/adapters/ and main.ts
 * touch the outside world through Deno.* (logic gets its I/O handed down).
 */

import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const LIB = join(ROOT, "lib");

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await sourceFiles(path));
    else if (entry.isFile && /\.(ts|tsx|js|mjs)$/.test(entry.name)) out.push(path);
  }
  return out.sort();
}

/** The code without comments (a `Deno.x` in a doc comment is no call). */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
}

/** Every module specifier: static imports and re-exports, `import "x"`, dynamic import("x"). */
export function importSpecifiers(text: string): string[] {
  const code = withoutComments(text);
  const specs: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^;]*?\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) specs.push(m[1]);
  return specs;
}

/** Files under lib/ that import a module outside lib/, as `file -> specifier`. */
export function importsLeavingLib(file: string, text: string, lib = LIB): string[] {
  return importSpecifiers(text).filter((spec) => {
    if (spec.startsWith("file:") || spec.startsWith("/")) return true;
    if (!spec.startsWith(".")) return false; // node:*, npm packages through the imports map
    const target = resolve(dirname(file), spec);
    return relative(lib, target).startsWith("..");
  });
}

/** Lines that use Deno.* in code. */
export function denoUses(text: string): string[] {
  return withoutComments(text).split("\n").filter((line) => /\bDeno\.[A-Za-z_]/.test(line))
    .map((line) => line.trim());
}

Deno.test("no file under lib/ imports from a folder outside lib/", async () => {
  const offenders: string[] = [];
  for (const file of await sourceFiles(LIB)) {
    for (const spec of importsLeavingLib(file, await Deno.readTextFile(file))) {
      offenders.push(`${relative(ROOT, file)} -> ${spec}`);
    }
  }
  assert.deepEqual(offenders, [], "lib/ imports that run back up");
});

Deno.test("Deno.* appears only in lib/adapters/ and main.ts", async () => {
  const offenders: string[] = [];
  for (const file of await sourceFiles(LIB)) {
    if (relative(LIB, file).startsWith("adapters/")) continue;
    for (const line of denoUses(await Deno.readTextFile(file))) {
      offenders.push(`${relative(ROOT, file)}: ${line}`);
    }
  }
  assert.deepEqual(offenders, [], "Deno.* outside lib/adapters/ and main.ts");
});

Deno.test("the rules see what they look for", () => {
  const file = join(LIB, "commands", "x.ts");
  const text = [
    'import { a } from "../../install/plan.ts";',
    'import type { B } from "../update/run.ts";',
    'export { c } from "../../test/fakes/docker.ts";',
    'const d = await import("../../main.ts");',
    'import "node:path";',
    "// import { e } from '../../bench/x.ts';",
  ].join("\n");
  assert.deepEqual(importsLeavingLib(file, text), [
    "../../install/plan.ts",
    "../../test/fakes/docker.ts",
    "../../main.ts",
  ]);
  assert.deepEqual(
    denoUses('/** Deno.pid */\nconst p = Deno.pid; // Deno.kill\nconst s = "runs with Deno.";'),
    ["const p = Deno.pid;"],
  );
});
