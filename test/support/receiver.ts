/**
 * Local HTTP servers on 127.0.0.1 (port 0) standing in for Telegram, DingTalk, Feishu, WeCom,
 * a webhook receiver, healthchecks.io and an HTTP proxy. They record every request exactly as
 * it arrived (raw path and query, headers, body) and answer what the test tells them to.
 */

export interface ReceivedRequest {
  method: string;
  /** The raw request target, e.g. `/robot/send?access_token=…&sign=…` (not decoded). */
  target: string;
  path: string;
  /** The raw query string without '?', not decoded. */
  rawQuery: string;
  headers: Headers;
  body: string;
}

export interface Answer {
  status?: number;
  body?: unknown;
  /** Wait this long before answering (a slow or hung service). */
  delayMs?: number;
}

export interface Receiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** What to answer next; the last one given stays in force. */
  answer: Answer | ((req: ReceivedRequest) => Answer);
  close(): Promise<void>;
}

export function startReceiver(answer: Receiver["answer"] = { status: 200, body: {} }): Receiver {
  const requests: ReceivedRequest[] = [];
  const pending = new Set<() => void>();
  const receiver: Receiver = {
    url: "",
    port: 0,
    requests,
    answer,
    close: async () => {
      // A held answer is let go, or shutdown would wait for it.
      for (const release of pending) release();
      await server.shutdown();
    },
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const u = new URL(req.url);
      // Deno.serve gives an absolute URL; the raw query is what follows '?'.
      const q = req.url.indexOf("?");
      const rec: ReceivedRequest = {
        method: req.method,
        target: u.pathname + (q >= 0 ? req.url.slice(q) : ""),
        path: u.pathname,
        rawQuery: q >= 0 ? req.url.slice(q + 1) : "",
        headers: req.headers,
        body: await req.text(),
      };
      requests.push(rec);
      const a = typeof receiver.answer === "function" ? receiver.answer(rec) : receiver.answer;
      if (a.delayMs) {
        await new Promise<void>((resolve) => {
          const release = () => {
            clearTimeout(t);
            pending.delete(release);
            resolve();
          };
          const t = setTimeout(release, a.delayMs);
          pending.add(release);
        });
      }
      const body = typeof a.body === "string" ? a.body : JSON.stringify(a.body ?? {});
      const status = a.status ?? 200;
      return new Response(status === 204 || status === 304 ? null : body, {
        status,
        headers: { "content-type": "application/json" },
      });
    },
  );
  receiver.port = (server.addr as Deno.NetAddr).port;
  receiver.url = `http://127.0.0.1:${receiver.port}`;
  return receiver;
}

/**
 * A small forwarding HTTP proxy (plain http targets: the request line carries the absolute
 * URL). Records the absolute URLs it was asked for.
 */
export function startProxy(): { url: string; seen: string[]; close(): Promise<void> } {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    seen.push(req.url);
    const headers = new Headers(req.headers);
    headers.delete("host");
    const res = await fetch(req.url, {
      method: req.method,
      headers,
      body: req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer(),
      redirect: "manual",
    });
    return new Response(await res.arrayBuffer(), { status: res.status, headers: res.headers });
  });
  const port = (server.addr as Deno.NetAddr).port;
  return { url: `http://127.0.0.1:${port}`, seen, close: () => server.shutdown() };
}

/** A port on 127.0.0.1 where nothing listens (connections are refused). */
export function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
