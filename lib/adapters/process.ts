/**
 * The process itself: its streams, signals, id and the files read once at start. main.ts builds
 * the CLI context from these; commands reach them only through the context.
 */

/** The signals that ask the watcher to stop. */
export const STOP_SIGNALS = ["SIGTERM", "SIGINT"] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

/** Calls `handler` on SIGTERM and SIGINT until the returned function is called. */
export function onStopSignals(handler: (signal: StopSignal) => void): () => void {
  const handlers = STOP_SIGNALS.map((signal) => [signal, () => handler(signal)] as const);
  for (const [signal, h] of handlers) Deno.addSignalListener(signal, h);
  return () => {
    for (const [signal, h] of handlers) Deno.removeSignalListener(signal, h);
  };
}

const encoder = new TextEncoder();

/** Writes raw text to stderr (no newline added). */
export function writeStderr(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

export function stdoutIsTerminal(): boolean {
  return Deno.stdout.isTerminal();
}

export function stderrIsTerminal(): boolean {
  return Deno.stderr.isTerminal();
}

/** A text file's content; null when it does not exist. Other failures throw. */
export function readTextFileOrNull(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/** The process's working folder (a relative path is relative to it). */
export function workingDir(): string {
  return Deno.cwd();
}

/** The real path of an existing path, links resolved; throws when it does not exist. */
export function realPath(path: string): string {
  return Deno.realPathSync(path);
}

/** The last `n` lines of a file, reading at most its last 64 KiB; null when absent. */
export async function tailLines(path: string, n: number): Promise<string[] | null> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  try {
    const size = (await file.stat()).size;
    const start = Math.max(0, size - 64 * 1024);
    await file.seek(start, Deno.SeekMode.Start);
    const buf = new Uint8Array(size - start);
    let read = 0;
    while (read < buf.length) {
      const got = await file.read(buf.subarray(read));
      if (got === null) break;
      read += got;
    }
    const text = new TextDecoder().decode(buf.subarray(0, read));
    const all = text.split("\n").filter((l) => l !== "");
    if (start > 0) all.shift(); // probably cut in the middle
    return n === 0 ? [] : all.slice(-n);
  } finally {
    file.close();
  }
}
