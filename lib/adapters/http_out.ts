/**
 * HTTP out to the notification services, through fetch. Deno's fetch honours HTTP_PROXY,
 * HTTPS_PROXY and NO_PROXY (and their lower-case forms) from the process environment; note that
 * it proxies loopback addresses too unless NO_PROXY names them (checked in
 * test/unit/notify_cli_test.ts: "notify --test goes through HTTP_PROXY, also to loopback, unless
 * NO_PROXY names the host").
 */

import type { HttpAnswer, HttpRequest } from "../notify/format.ts";
import type { HttpOut } from "../notify/notifier.ts";

/** More of an answer than this is not read (a hostile server cannot fill our memory). */
const MAX_ANSWER_BYTES = 16 * 1024;

export class FetchHttpOut implements HttpOut {
  async send(request: HttpRequest, timeoutMs: number): Promise<HttpAnswer> {
    const signal = AbortSignal.timeout(timeoutMs);
    let res: Response;
    try {
      res = await fetch(request.url, {
        method: request.method,
        headers: { "User-Agent": "hyperbot-ops", ...request.headers },
        body: request.body,
        // A redirect would carry the message (and a webhook's signature) somewhere unnamed.
        redirect: "manual",
        signal,
      });
    } catch (err) {
      if (signal.aborted) throw new Error(`no answer within ${timeoutMs / 1000} s`);
      throw new Error(`cannot connect: ${describe(err)}`);
    }
    try {
      return { status: res.status, body: await readCapped(res, signal) };
    } catch (err) {
      if (signal.aborted) throw new Error(`no complete answer within ${timeoutMs / 1000} s`);
      throw new Error(`the answer broke off: ${describe(err)}`);
    }
  }
}

async function readCapped(res: Response, signal: AbortSignal): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const onAbort = () => reader.cancel().catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < MAX_ANSWER_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
    if (signal.aborted) throw new Error("timed out");
  } finally {
    signal.removeEventListener("abort", onAbort);
    await reader.cancel().catch(() => {});
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(all.subarray(0, MAX_ANSWER_BYTES));
}

function describe(err: unknown): string {
  const e = err as Error & { cause?: unknown };
  const cause = e?.cause instanceof Error ? `: ${e.cause.message}` : "";
  return `${e?.message ?? String(err)}${cause}`;
}
