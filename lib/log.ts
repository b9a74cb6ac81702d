/**
 * Logging: levels and fields, to stderr and to size-rotated files under logDir.
 *
 * Each command logs under its own category, and each category has its own file:
 *   update -> update.log, watch -> monitor.log, health -> health-check.log.
 * Files are created with mode 0640 and opened without following links (lib/adapters/log_file.ts);
 * at most MAX_LOG_FILES rotated files of MAX_LOG_BYTES each are kept per category.
 *
 * A few lines of routing instead of a logging package: the watcher spends its life idle, and
 * an npm package brings Deno's npm and Node layers into its resident memory (issue 9).
 */

import { join } from "node:path";
import { errorText } from "./errors.ts";
import { makeLogDir, RotatingLogFile } from "./adapters/log_file.ts";
import { printable, printableJson } from "./printable.ts";

export type Fields = Record<string, unknown>;

/** What logic uses to log. Fields end up as `key=value` pairs after the message. */
export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
}

export type LogCategory = "update" | "watch" | "health" | "status" | "install";

export const LOG_FILES: Record<LogCategory, string | null> = {
  update: "update.log",
  watch: "monitor.log",
  health: "health-check.log",
  status: null,
  install: null,
};

export const MAX_LOG_BYTES = 5 * 1024 * 1024;
export const MAX_LOG_FILES = 5;

export type LogLevel = "trace" | "debug" | "info" | "warning" | "error" | "fatal";
const LEVEL_RANK: Record<LogLevel, number> = {
  trace: 0,
  debug: 1,
  info: 2,
  warning: 3,
  error: 4,
  fatal: 5,
};

/** One event: what formatRecord writes as one line. */
export interface LogRecord {
  /** `["hyperbot-ops", <category>]`. */
  category: readonly string[];
  level: LogLevel;
  message: readonly unknown[];
  properties: Record<string, unknown>;
  /** Milliseconds since the epoch. */
  timestamp: number;
}

type Sink = ((record: LogRecord) => void) & { close?: () => void };

export interface LoggingOptions {
  logDir: string;
  /** Categories whose files this process writes. */
  files: LogCategory[];
  /** Lowest level written to stderr (default info). */
  stderrLevel?: LogLevel;
  /** Whether stderr lines carry a timestamp (not under journald, which adds its own). */
  stderrTimestamps?: boolean;
  /** Lowest level written to files (default debug). */
  fileLevel?: LogLevel;
}

/** Where records go: set by setupLogging; before it (and after closeLogging) nowhere. */
let routes: {
  stderr: Sink;
  stderrLevel: number;
  files: Partial<Record<LogCategory, Sink>>;
  fileLevel: number;
} | null = null;

/** Sets up logging once per process. Safe to call again (reconfigures). */
export function setupLogging(options: LoggingOptions): Promise<void> {
  closeFiles();
  const timestamps = options.stderrTimestamps ?? false;
  const files: Partial<Record<LogCategory, Sink>> = {};
  for (const category of options.files) {
    const file = LOG_FILES[category];
    if (!file) continue;
    const path = join(options.logDir, file);
    try {
      makeLogDir(options.logDir);
      files[category] = fileSink(
        new RotatingLogFile(path, { maxBytes: MAX_LOG_BYTES, maxFiles: MAX_LOG_FILES }),
      );
    } catch (err) {
      // A read-only or missing log folder must not stop an update: stderr still gets everything.
      console.error(`warning: cannot write log file '${path}': ${errorText(err)}`);
    }
  }
  routes = {
    stderr: (record) => console.error(formatRecord(record, timestamps)),
    stderrLevel: LEVEL_RANK[options.stderrLevel ?? "info"],
    files,
    fileLevel: LEVEL_RANK[options.fileLevel ?? "debug"],
  };
  return Promise.resolve();
}

/** Closes the log files; later records go nowhere. */
export function closeLogging(): Promise<void> {
  closeFiles();
  routes = null;
  return Promise.resolve();
}

function closeFiles() {
  for (const sink of Object.values(routes?.files ?? {})) sink.close?.();
}

function emit(category: LogCategory, level: LogLevel, message: string, fields: Fields = {}) {
  if (!routes) return;
  const rank = LEVEL_RANK[level];
  const record: LogRecord = {
    category: ["hyperbot-ops", category],
    level,
    message: [message],
    properties: fields,
    timestamp: Date.now(),
  };
  const file = routes.files[category];
  if (file && rank >= routes.fileLevel) file(record);
  if (rank >= routes.stderrLevel) routes.stderr(record);
}

/** The logger of one category. */
export function loggerFor(category: LogCategory): Logger {
  return {
    debug: (message, fields) => emit(category, "debug", message, fields),
    info: (message, fields) => emit(category, "info", message, fields),
    warn: (message, fields) => emit(category, "warning", message, fields),
    error: (message, fields) => emit(category, "error", message, fields),
  };
}

/** A logger that writes nothing; for tests and for code that needs one before logging is set up. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Collects log lines in memory; for tests. */
export class MemoryLogger implements Logger {
  readonly lines: { level: string; message: string; fields: Fields }[] = [];
  debug(message: string, fields: Fields = {}) {
    this.lines.push({ level: "debug", message, fields });
  }
  info(message: string, fields: Fields = {}) {
    this.lines.push({ level: "info", message, fields });
  }
  warn(message: string, fields: Fields = {}) {
    this.lines.push({ level: "warn", message, fields });
  }
  error(message: string, fields: Fields = {}) {
    this.lines.push({ level: "error", message, fields });
  }
}

const LEVEL_NAMES: Record<LogLevel, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO ",
  warning: "WARN ",
  error: "ERROR",
  fatal: "FATAL",
};

/** The most characters of a message, and of one field value, a log line holds. */
export const MAX_LOG_TEXT = 2000;

/**
 * `2026-01-05T10:00:00.000Z INFO  update: pulled image=… step=pull`
 *
 * One event is one line whatever its text holds: the message goes through printable() and each
 * value is written bare only when it is a plain word, else JSON-quoted with printableJson(), so a
 * value with spaces, quotes, `=`, controls or bidi characters can neither fake another field or
 * line nor reach the reader's terminal as an escape.
 */
export function formatRecord(record: LogRecord, timestamp: boolean): string {
  const message = printable(
    record.message.map((part) => typeof part === "string" ? part : String(part)).join(""),
    MAX_LOG_TEXT,
  );
  const fields = Object.entries(record.properties)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `${printable(k, 40)}=${formatValue(v)}`)
    .join(" ");
  const head = `${LEVEL_NAMES[record.level]} ${record.category.slice(1).join(".")}: ${message}`;
  const line = fields ? `${head} ${fields}` : head;
  return timestamp ? `${new Date(record.timestamp).toISOString()} ${line}` : line;
}

function formatValue(value: unknown): string {
  const full = typeof value === "string" ? value : printableJson(value);
  const text = full.length > MAX_LOG_TEXT
    ? Array.from(full).slice(0, MAX_LOG_TEXT).join("") + "…"
    : full;
  const plain = /^[^\s"'=\\]+$/u.test(text) && printable(text, Infinity) === text;
  return plain ? text : printableJson(text);
}

/**
 * Each line is written at once (`tail -f` and `status` see it), so no flush timer wakes an idle
 * watcher. A write that fails (disk full, the file replaced by something that is not a file) is
 * reported on stderr once until writing works again, and never ends the process.
 */
function fileSink(file: RotatingLogFile): Sink {
  const encoder = new TextEncoder();
  let failing = false;
  const sink = (record: LogRecord) => {
    try {
      file.write(encoder.encode(formatRecord(record, true) + "\n"));
      failing = false;
    } catch (err) {
      if (!failing) {
        console.error(`warning: cannot write log file '${file.path}': ${errorText(err)}`);
      }
      failing = true;
    }
  };
  return Object.assign(sink, { close: () => file.close() });
}
