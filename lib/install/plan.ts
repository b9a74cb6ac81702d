/**
 * The install plan as data. `desiredInstall()` says what an installed hyperbot-ops looks like
 * (files with content and mode, folders, the service enabled and running);
 * `planInstall(current, desired)` diffs that against what is there and returns the actions
 * that close the gap: none on a second run, only the changed file (and a restart) when a
 * setting changed. `planUninstall()` undoes exactly what the manifest says was installed.
 * Pure: lib/install/apply.ts carries the actions out through the adapters.
 */

import { dirname, join } from "node:path";
import { JOURNAL_FILE } from "../adapters/files.ts";
import { type Config, CONFIG_KEYS, type ConfigKey, DEFAULT_SERVICE } from "../config.ts";
import { cronFileFor, healthCronLinesFor, renderCron, renderLauncher } from "./cron.ts";
import { renderUnit, UNIT_DIR } from "./unit.ts";
import { healthCronLines } from "../adapters/crontab.ts";

export const MANIFEST_FILE = "install-manifest.json";
export const DEFAULT_LAUNCHER = "/usr/local/lib/hyperbot-ops/hyperbot-ops";
/** The cron file of the default service; another service has its own (cronFileFor). */
export const DEFAULT_CRON_FILE = cronFileFor(DEFAULT_SERVICE);
/** Every file install writes starts with this line; uninstall without a manifest removes only such files. */
export const INSTALLED_MARK = "Installed by 'hyperbot-ops install'";

/** How long a pull may take, on top of the verification time, when systemd stops the watcher. */
export const PULL_ALLOWANCE_SECONDS = 300;
export const STOP_ALLOWANCE_SECONDS = 60;

export type FileRole = "config" | "launcher" | "unit" | "cron";
export type DirRole = "base" | "data" | "log" | "state" | "config" | "launcher" | "metrics";

export interface DesiredFile {
  role: FileRole;
  path: string;
  content: string;
  mode: number;
}

export interface DesiredDir {
  role: DirRole;
  path: string;
  mode: number;
  /** Whether an existing folder is brought to this mode (only folders that are ours alone). */
  enforceMode: boolean;
}

export interface DesiredInstall {
  service: string;
  /** `<service>.service` */
  unit: string;
  dirs: DesiredDir[];
  /** In the order they are written: config, launcher, unit, cron. */
  files: DesiredFile[];
  manifestPath: string;
  /** The update journal: while it holds work, an update is in progress or was left unfinished. */
  journalPath: string;
}

export interface InstallSettings {
  config: Config;
  /** Where the config file goes (absolute). */
  configFile: string;
  /** The settings saved in the config file, by key. */
  savedSettings: Partial<Record<ConfigKey, unknown>>;
  /** `ctx.selfCommand`: the compiled binary, or `deno run … main.ts`. */
  selfCommand: string[];
  /** DENO_DIR for the launcher (only when running from source). */
  denoDir?: string | null;
  cronSchedule?: string;
  launcherPath?: string;
  cronFile?: string;
  unitDir?: string;
}

/** What install leaves behind, recorded in `<stateDir>/install-manifest.json`. */
export interface Manifest {
  version: 1;
  service: string;
  unit: string;
  files: { role: FileRole; path: string; preexisting: boolean }[];
  /** Folders that did not exist before install (uninstall removes only ours: state, config, launcher). */
  createdDirs: { role: DirRole; path: string }[];
}

export interface CurrentFile {
  content: string;
  mode: number;
}

/** What is on the host now, as apply.ts reads it. */
export interface CurrentInstall {
  /** By path; null when absent. */
  files: Record<string, CurrentFile | null>;
  /** Folder modes by path; null when absent. */
  dirs: Record<string, number | null>;
  service: { loadState: string; activeState: string; unitFileState: string };
  manifest: Manifest | null;
  /** The update journal holds work (an update runs, or a killed one waits for recovery). */
  journal: boolean;
}

export type Action =
  | { kind: "mkdir"; role: DirRole; path: string; mode: number }
  | { kind: "chmod"; role: DirRole; path: string; mode: number; from: number }
  | {
    kind: "write";
    role: FileRole;
    path: string;
    content: string;
    mode: number;
    change: "create" | "update";
    /** For the unit: the settings it changes (`- old`, `+ new`), shown by --dry-run. */
    detail?: string[];
  }
  | { kind: "daemon-reload" }
  | { kind: "enable-now"; unit: string }
  | { kind: "restart"; unit: string; because: string }
  | { kind: "write-manifest"; path: string; manifest: Manifest }
  | { kind: "disable-now"; unit: string }
  | { kind: "reset-failed"; unit: string }
  | { kind: "remove"; role: FileRole | "manifest"; path: string }
  | { kind: "require-no-journal"; path: string; unit: string }
  | { kind: "remove-dir"; role: DirRole; path: string; recursive: boolean };

/** Seconds systemd waits on stop: long enough for a pull, a verification and a stop to finish. */
export function stopTimeoutSeconds(config: Config): number {
  return PULL_ALLOWANCE_SECONDS + STOP_ALLOWANCE_SECONDS + config.healthTimeoutSeconds +
    config.stableSeconds;
}

/** The executable the unit and cron run: the compiled binary, or the launcher. */
export function executableOf(settings: InstallSettings): string {
  return settings.selfCommand.length === 1
    ? settings.selfCommand[0]
    : settings.launcherPath ?? DEFAULT_LAUNCHER;
}

/** The config file content: the given settings, in the documented key order. */
export function renderConfigFile(saved: Partial<Record<ConfigKey, unknown>>): string {
  const ordered: Record<string, unknown> = {};
  for (const key of Object.keys(CONFIG_KEYS) as ConfigKey[]) {
    if (saved[key] !== undefined) ordered[key] = saved[key];
  }
  return JSON.stringify(ordered, null, 2) + "\n";
}

/** What an installed hyperbot-ops looks like for these settings. */
export function desiredInstall(settings: InstallSettings): DesiredInstall {
  const { config } = settings;
  const executable = executableOf(settings);
  const unit = `${config.service}.service`;
  const dirs: DesiredDir[] = [
    { role: "base", path: config.baseDir, mode: 0o755, enforceMode: false },
    // The bot writes its trigger here: leave an existing folder's mode to its owner.
    { role: "data", path: config.dataDir, mode: 0o755, enforceMode: false },
    { role: "log", path: config.logDir, mode: 0o750, enforceMode: false },
    { role: "state", path: config.stateDir, mode: 0o750, enforceMode: true },
    { role: "config", path: dirname(settings.configFile), mode: 0o755, enforceMode: false },
  ];
  // node_exporter (another user) reads the metrics file; the sandboxed watcher cannot create
  // the folder under a read-only /var itself.
  const metricsDir = config.metricsFile ? [dirname(config.metricsFile)] : [];
  for (const path of metricsDir) {
    dirs.push({ role: "metrics", path, mode: 0o755, enforceMode: false });
  }
  const files: DesiredFile[] = [
    {
      role: "config",
      path: settings.configFile,
      content: renderConfigFile(settings.savedSettings),
      mode: 0o640,
    },
  ];
  const launcher = renderLauncher(settings.selfCommand, settings.denoDir ?? null);
  if (launcher !== null) {
    dirs.push({ role: "launcher", path: dirname(executable), mode: 0o755, enforceMode: false });
    files.push({ role: "launcher", path: executable, content: launcher, mode: 0o755 });
  }
  files.push({
    role: "unit",
    path: join(settings.unitDir ?? UNIT_DIR, unit),
    content: renderUnit({
      service: config.service,
      executable,
      configFile: settings.configFile,
      readWritePaths: [
        config.baseDir,
        config.dataDir,
        config.logDir,
        config.stateDir,
        ...metricsDir,
      ],
      timeoutStopSec: stopTimeoutSeconds(config),
      // Notifications need the network; without them the watcher has none.
      network: config.notify.length > 0,
    }),
    mode: 0o644,
  });
  files.push({
    role: "cron",
    path: settings.cronFile ?? cronFileFor(config.service),
    content: renderCron({
      executable,
      configFile: settings.configFile,
      schedule: settings.cronSchedule,
    }),
    mode: 0o644,
  });
  return {
    service: config.service,
    unit,
    dirs: uniqueDirs(dirs),
    files,
    manifestPath: join(config.stateDir, MANIFEST_FILE),
    journalPath: join(config.stateDir, JOURNAL_FILE),
  };
}

/**
 * The actions that make the host match `desired`, in order. Empty when nothing differs.
 * The manifest is written only when it changes, so a second run is empty.
 */
export function planInstall(current: CurrentInstall, desired: DesiredInstall): Action[] {
  const actions: Action[] = [];
  const createdDirs = [...(current.manifest?.createdDirs ?? [])];
  for (const dir of desired.dirs) {
    const mode = current.dirs[dir.path] ?? null;
    if (mode === null) {
      actions.push({ kind: "mkdir", role: dir.role, path: dir.path, mode: dir.mode });
      if (!createdDirs.some((d) => d.path === dir.path)) {
        createdDirs.push({ role: dir.role, path: dir.path });
      }
    } else if (dir.enforceMode && (mode & 0o7777) !== dir.mode) {
      actions.push({ kind: "chmod", role: dir.role, path: dir.path, mode: dir.mode, from: mode });
    }
  }

  const changedRoles = new Set<FileRole>();
  for (const file of desired.files) {
    const now = current.files[file.path] ?? null;
    if (now !== null && now.content === file.content && (now.mode & 0o7777) === file.mode) continue;
    const detail = file.role === "unit" ? unitChanges(now?.content ?? null, file.content) : [];
    actions.push({
      kind: "write",
      ...file,
      change: now === null ? "create" : "update",
      ...(detail.length > 0 ? { detail } : {}),
    });
    changedRoles.add(file.role);
  }

  // An earlier version wrote every service's entry into one file (so a second bot's manifest
  // records it as preexisting): a file we wrote that now holds only this config's entry goes, so
  // health does not run twice. Another config's entry there stays, and so does a file not ours.
  const configPath = desired.files.find((f) => f.role === "config")?.path ?? "";
  for (const old of current.manifest?.files ?? []) {
    if (old.role !== "cron") continue;
    if (desired.files.some((f) => f.path === old.path)) continue;
    const content = current.files[old.path]?.content ?? null;
    if (content === null || !content.includes(INSTALLED_MARK)) continue;
    const ours = healthCronLinesFor(content, configPath).length;
    if (ours === 0 || ours !== healthCronLines(content).length) continue;
    actions.push({ kind: "remove", role: "cron", path: old.path });
  }

  if (changedRoles.has("unit")) actions.push({ kind: "daemon-reload" });
  const service = current.service;
  const active = service.activeState === "active" || service.activeState === "activating";
  const enabled = service.unitFileState === "enabled";
  if (!active || !enabled) {
    actions.push({ kind: "enable-now", unit: desired.unit });
  }
  const affectsWatcher = (["unit", "config", "launcher"] as FileRole[]).filter((r) =>
    changedRoles.has(r)
  );
  if (active && affectsWatcher.length > 0) {
    actions.push({
      kind: "restart",
      unit: desired.unit,
      because: `${affectsWatcher.join(", ")} changed`,
    });
  }

  const manifest: Manifest = {
    version: 1,
    service: desired.service,
    unit: desired.unit,
    files: desired.files.map((f) => ({
      role: f.role,
      path: f.path,
      preexisting: current.manifest?.files.find((m) => m.path === f.path)?.preexisting ??
        (current.files[f.path] ?? null) !== null,
    })),
    createdDirs,
  };
  if (JSON.stringify(manifest) !== JSON.stringify(current.manifest)) {
    actions.push({ kind: "write-manifest", path: desired.manifestPath, manifest });
  }
  return actions;
}

/**
 * The actions that remove what install put there: stop and disable the service, remove the
 * files it wrote (never a file that was there before it), and the folders that are ours
 * alone. The bot container, the data folder and the logs stay.
 * Without a manifest, only files that carry the install mark are removed.
 */
export function planUninstall(
  current: CurrentInstall,
  desired: DesiredInstall,
): Action[] {
  const actions: Action[] = [];
  const manifest = current.manifest;
  const unit = manifest?.unit ?? desired.unit;
  const candidates = manifest
    ? manifest.files.filter((f) => !f.preexisting)
    : desired.files.filter((f) => f.role !== "config");
  const removals: Action[] = [];
  for (const file of candidates) {
    const now = current.files[file.path] ?? null;
    if (now === null) continue;
    if (!manifest && !now.content.includes(INSTALLED_MARK)) continue;
    removals.push({ kind: "remove", role: file.role, path: file.path });
  }
  // The cron entry goes first: a health run must not start the watcher again while it stops.
  actions.push(...removals.filter((a) => a.kind === "remove" && a.role === "cron"));
  if (current.service.loadState !== "not-found" && current.service.loadState !== "") {
    actions.push({ kind: "disable-now", unit });
    actions.push({ kind: "require-no-journal", path: desired.journalPath, unit });
  }
  const rest = removals.filter((a) => !(a.kind === "remove" && a.role === "cron"));
  actions.push(...rest);
  const unitRemoved = rest.some((a) => a.kind === "remove" && a.role === "unit");
  if (unitRemoved) {
    actions.push({ kind: "daemon-reload" });
    actions.push({ kind: "reset-failed", unit });
  }
  const ours = (manifest?.createdDirs ?? []).filter((d) =>
    d.role === "state" || d.role === "config" || d.role === "launcher"
  );
  for (const dir of ours) {
    if ((current.dirs[dir.path] ?? null) === null) continue;
    actions.push({
      kind: "remove-dir",
      role: dir.role,
      path: dir.path,
      recursive: dir.role === "state",
    });
  }
  const manifestPath = desired.manifestPath;
  if (manifest && !ours.some((d) => d.role === "state")) {
    actions.push({ kind: "remove", role: "manifest", path: manifestPath });
  }
  return actions;
}

/** One line per action, for `--dry-run` and for what `--apply` did. */
export function describeAction(action: Action): string {
  const mode = (m: number) => `0${m.toString(8)}`;
  switch (action.kind) {
    case "mkdir":
      return `create folder ${action.path} (mode ${mode(action.mode)})`;
    case "chmod":
      return `set mode of ${action.path} to ${mode(action.mode)} (was ${
        mode(action.from & 0o7777)
      })`;
    case "write":
      return `${action.change} ${action.role} file ${action.path} (mode ${mode(action.mode)})` +
        (action.detail ?? []).map((line) => `\n      ${line}`).join("");
    case "daemon-reload":
      return "systemctl daemon-reload";
    case "enable-now":
      return `systemctl enable --now ${action.unit}`;
    case "restart":
      return `systemctl restart ${action.unit} (${action.because})`;
    case "write-manifest":
      return `record what was installed in ${action.path}`;
    case "disable-now":
      return `systemctl disable --now ${action.unit}`;
    case "reset-failed":
      return `systemctl reset-failed ${action.unit}`;
    case "remove":
      return `remove ${action.role} file ${action.path}`;
    case "require-no-journal":
      return `check that no update is left unfinished (${action.path})`;
    case "remove-dir":
      return `remove folder ${action.path}${action.recursive ? " and its content" : " (if empty)"}`;
  }
}

function uniqueDirs(dirs: DesiredDir[]): DesiredDir[] {
  const seen = new Map<string, DesiredDir>();
  for (const d of dirs) if (!seen.has(d.path)) seen.set(d.path, d);
  return [...seen.values()];
}

/** The settings that decide what the watcher may reach and write. */
const ACCESS_SETTINGS =
  /^(ReadWritePaths|RestrictAddressFamilies|PrivateNetwork|IPAddressDeny|SocketBindDeny)=/;

/**
 * What a unit file changes, setting by setting: `- line` gone, `+ line` new (comments and blank
 * lines left out). A new unit: its network and write-access settings, so a dry run shows what
 * the watcher may reach.
 */
export function unitChanges(before: string | null, after: string): string[] {
  const settings = (text: string) =>
    text.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#") && !l.startsWith("["));
  const next = settings(after);
  if (before === null) return next.filter((l) => ACCESS_SETTINGS.test(l)).map((l) => `  ${l}`);
  const prev = settings(before);
  return [
    ...prev.filter((l) => !next.includes(l)).map((l) => `- ${l}`),
    ...next.filter((l) => !prev.includes(l)).map((l) => `+ ${l}`),
  ];
}
