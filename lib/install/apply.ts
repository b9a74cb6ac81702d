/**
 * Reads what is installed now and carries out a plan (lib/install/plan.ts) through the adapters:
 * files, systemd (lib/adapters/systemctl.ts), cron (lib/adapters/crontab.ts).
 */

import type { CronTable } from "../adapters/crontab.ts";
import type { ServiceManager } from "../adapters/systemctl.ts";
import { OpsError } from "../errors.ts";
import type { Logger } from "../log.ts";
import {
  type Action,
  type CurrentFile,
  type CurrentInstall,
  describeAction,
  type DesiredInstall,
  type Manifest,
} from "./plan.ts";

/** The files install touches. Real: lib/adapters/install_files.ts; tests: an in-memory map. */
export interface InstallFiles {
  /** Content and mode of a regular file, or null when absent. */
  read(path: string): Promise<CurrentFile | null>;
  /** Mode of a folder, or null when absent. */
  dirMode(path: string): Promise<number | null>;
  /** Writes atomically with exactly this mode, creating missing parent folders (0755). */
  write(path: string, content: string, mode: number): Promise<void>;
  /** Creates a folder (and parents) with exactly this mode. */
  mkdir(path: string, mode: number): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  /** Removes a file; no error when absent. */
  remove(path: string): Promise<void>;
  /** Removes a folder; without `recursive` only an empty one. Returns false when it was not empty. */
  removeDir(path: string, recursive: boolean): Promise<boolean>;
}

export interface InstallDeps {
  files: InstallFiles;
  services: ServiceManager;
  cron: CronTable;
  logger: Logger;
}

/** An install step failed; the steps before it were carried out. */
export class InstallError extends OpsError {
  readonly exitCode = 1;
}

/**
 * What is on the host for these desired files and folders (and for what an earlier install
 * recorded in its manifest). `service` is null-safe: when systemd cannot be asked and
 * `tolerateNoSystemd` is set (dry runs), the service counts as not installed.
 */
export async function readCurrentInstall(
  deps: InstallDeps,
  desired: DesiredInstall,
  options: { tolerateNoSystemd?: boolean } = {},
): Promise<CurrentInstall> {
  const manifestFile = await deps.files.read(desired.manifestPath);
  let manifest: Manifest | null = null;
  if (manifestFile) {
    try {
      manifest = JSON.parse(manifestFile.content) as Manifest;
    } catch {
      deps.logger.warn("install manifest is not valid JSON; ignoring it", {
        file: desired.manifestPath,
      });
    }
  }
  const filePaths = new Set([
    ...desired.files.map((f) => f.path),
    ...(manifest?.files.map((f) => f.path) ?? []),
  ]);
  const dirPaths = new Set([
    ...desired.dirs.map((d) => d.path),
    ...(manifest?.createdDirs.map((d) => d.path) ?? []),
  ]);
  const files: CurrentInstall["files"] = {};
  const cronPaths = new Set([
    ...desired.files.filter((f) => f.role === "cron").map((f) => f.path),
    ...(manifest?.files.filter((f) => f.role === "cron").map((f) => f.path) ?? []),
  ]);
  for (const path of filePaths) {
    if (!cronPaths.has(path) || path !== deps.cron.path) {
      files[path] = await deps.files.read(path);
      continue;
    }
    // The cron entry is the cron adapter's; the file's mode still matters to cron.
    const content = await deps.cron.read();
    files[path] = content === null
      ? null
      : { content, mode: (await deps.files.read(path))?.mode ?? 0o644 };
  }
  const dirs: CurrentInstall["dirs"] = {};
  for (const path of dirPaths) dirs[path] = await deps.files.dirMode(path);
  let service: CurrentInstall["service"];
  try {
    const s = await deps.services.status(manifest?.unit ?? desired.unit);
    service = {
      loadState: s.loadState,
      activeState: s.activeState,
      unitFileState: s.unitFileState,
    };
  } catch (err) {
    if (!options.tolerateNoSystemd) throw err;
    service = { loadState: "not-found", activeState: "inactive", unitFileState: "" };
  }
  const journal = journalPending(await deps.files.read(desired.journalPath));
  return { files, dirs, service, manifest, journal };
}

/** Carries the actions out in order. Returns their descriptions. Throws InstallError at the first failure. */
export async function applyActions(actions: Action[], deps: InstallDeps): Promise<string[]> {
  const done: string[] = [];
  for (const action of actions) {
    let what = describeAction(action);
    try {
      what = (await applyAction(action, deps)) ?? what;
    } catch (err) {
      // The cause's own advice comes first: it knows what to do about itself.
      const advice = err instanceof OpsError && err.hint
        ? err.hint
        : "fix the cause and run install again";
      throw new InstallError(`install step failed: ${what}`, {
        cause: err,
        hint: done.length > 0 ? `${advice} (done before it: ${done.join("; ")})` : advice,
      });
    }
    deps.logger.info(what, { step: action.kind });
    done.push(what);
  }
  return done;
}

/** Carries one action out; returns what happened instead when it was not what was planned. */
async function applyAction(action: Action, deps: InstallDeps): Promise<string | void> {
  switch (action.kind) {
    case "mkdir":
      return deps.files.mkdir(action.path, action.mode);
    case "chmod":
      return deps.files.chmod(action.path, action.mode);
    case "write":
      if (action.role === "cron" && action.path === deps.cron.path) {
        return deps.cron.write(action.content);
      }
      return deps.files.write(action.path, action.content, action.mode);
    case "daemon-reload":
      return deps.services.daemonReload();
    case "enable-now":
      return deps.services.enableNow(action.unit);
    case "restart":
      return deps.services.restart(action.unit);
    case "write-manifest":
      return deps.files.write(action.path, JSON.stringify(action.manifest, null, 2) + "\n", 0o640);
    case "disable-now":
      return deps.services.disableNow(action.unit);
    case "require-no-journal":
      // After the service stopped (an update in progress was let finish): a journal left now
      // is what recovery needs to put the bot back, so nothing more is removed.
      if (journalPending(await deps.files.read(action.path))) {
        throw unfinishedUpdate({ ...action, unitLoaded: true });
      }
      return;
    case "reset-failed":
      return deps.services.resetFailed(action.unit);
    case "remove":
      if (action.role === "cron" && action.path === deps.cron.path) return deps.cron.remove();
      return deps.files.remove(action.path);
    case "remove-dir": {
      const removed = await deps.files.removeDir(action.path, action.recursive);
      if (!removed) {
        deps.logger.warn("folder not empty, left in place", { path: action.path });
        return `kept folder ${action.path}: not empty`;
      }
      return;
    }
  }
}

/**
 * Whether the update journal still has work for recovery: it exists and is not marked finished
 * (a finished one only waits to be cleared). One that cannot be read counts as pending.
 */
export function journalPending(file: CurrentFile | null): boolean {
  if (file === null) return false;
  try {
    return (JSON.parse(file.content) as { finished?: unknown })?.finished !== true;
  } catch {
    return true;
  }
}

/** Uninstall refused: the journal of an update that did not finish is still there. */
export function unfinishedUpdate(where: {
  path: string;
  unit: string;
  /** Whether systemd knows the unit (else the watcher is run by hand). */
  unitLoaded: boolean;
  configFile?: string;
}): InstallError {
  const watcher = where.unitLoaded
    ? `start the watcher: 'systemctl enable --now ${where.unit}'`
    : `run the watcher by hand: 'hyperbot-ops watch${
      where.configFile ? ` --config ${where.configFile}` : ""
    }' (Ctrl-C once it is idle)`;
  return new InstallError("an update is in progress or was left unfinished", {
    object: where.path,
    hint: `${watcher}; at start it recovers the journal and puts the bot back. Uninstall again ` +
      `once ${where.path} is gone (monitor.log says what the recovery did)`,
  });
}
