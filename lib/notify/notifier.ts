/**
 * Delivery: every notification becomes one outbox entry per channel in stateDir (so it survives
 * a restart of the watcher), delivered at once and retried after 5 s, 15 s, 30 s, 60 s, then
 * every 5 minutes for an hour, then dropped with a log line. Each attempt times out after 5 s.
 * The outbox is bounded (MAX_OUTBOX entries; the oldest go first, with a log line).
 *
 * Nothing here throws into its caller: a notification is reported after the update's outcome,
 * status file and exit code are settled, and a failure to notify never changes them.
 */

import type { Logger } from "../log.ts";
import type { Clock } from "../state.ts";
import type { Outcome, StatusFile, UpdateReport } from "../update/report.ts";
import { printable } from "../printable.ts";
import type { ChannelConfig, NotifyLanguage } from "./channels.ts";
import {
  ERROR_MAX,
  type EventName,
  newNotification,
  type Notification,
  updateFields,
} from "./events.ts";
import {
  buildRequest,
  type HttpAnswer,
  type HttpRequest,
  judgeAnswer,
  judgePing,
  pingRequest,
  type Verdict,
} from "./format.ts";
import { renderText } from "./messages.ts";
import { channelTarget, redactUrl, scrub, secretsOf } from "./redact.ts";

/** Waits between attempts: 5 s, 15 s, 30 s, 60 s, then every 5 minutes for an hour. */
export const RETRY_DELAYS_MS: readonly number[] = [
  5_000,
  15_000,
  30_000,
  60_000,
  ...Array(12).fill(300_000),
];
export const ATTEMPT_TIMEOUT_MS = 5_000;
export const MAX_OUTBOX = 200;
/** An entry whose attempt the outbox could not record waits at least this long (in memory). */
export const HOLD_AFTER_ERROR_MS = 5_000;
/** Rejected triggers: at most one message per this window. */
export const REJECTED_WINDOW_MS = 10 * 60_000;
/** How long `update` on the command line waits for delivery before it exits. */
export const CLI_DELIVERY_WAIT_MS = 5_000;

/** The way out to the internet (lib/adapters/http_out.ts). */
export interface HttpOut {
  /**
   * Sends one request. Resolves with any HTTP answer; throws when there is none (refused,
   * DNS, TLS, no answer within `timeoutMs`).
   */
  send(request: HttpRequest, timeoutMs: number): Promise<HttpAnswer>;
}

export interface OutboxEntry {
  id: string;
  /** The channel's name. */
  channel: string;
  notification: Notification;
  createdAt: string;
  /** Attempts made so far. */
  attempts: number;
  /** Not tried again before this time (ISO 8601). */
  nextAt: string;
  lastError: string | null;
}

/** An entry this process holds for delivery (no other process tries it meanwhile). */
export interface TakenEntry {
  entry: OutboxEntry;
  /** Delivered or given up: the entry leaves the outbox. */
  remove(): Promise<void>;
  /** Failed: store the entry's new attempt count and time. */
  reschedule(entry: OutboxEntry): Promise<void>;
  release(): Promise<void>;
}

/** The outbox in `<stateDir>/notify/outbox/`, shared by watch, update and health. */
export interface OutboxStore {
  /** Adds an entry. Returns the entries dropped to keep at most `max`, oldest first. */
  add(entry: OutboxEntry, max: number): Promise<OutboxEntry[]>;
  list(): Promise<OutboxEntry[]>;
  /** Takes an entry; null when it is gone or another process holds it. */
  take(id: string): Promise<TakenEntry | null>;
}

export interface DeliveryRecord {
  at: string;
  event: EventName;
  /** The secret-free error of a failed attempt. */
  error?: string;
}

export interface ChannelRecord {
  lastDelivery: DeliveryRecord | null;
  lastFailure: DeliveryRecord | null;
}

/** What notify remembers across runs and processes, in `<stateDir>/notify/state.json`. */
export interface NotifyState {
  channels: Record<string, ChannelRecord>;
  /** The journal id of an unfinished rollback already reported. */
  unfinishedUpdate: string | null;
  /** Health reported that it could not restart the watcher (not again until it is well). */
  watcherRestartFailed: boolean;
}

export interface NotifyStateStore {
  read(): Promise<NotifyState>;
  /** Read, change, write, under a lock shared by every process. */
  update(change: (state: NotifyState) => void): Promise<void>;
}

export function emptyNotifyState(): NotifyState {
  return { channels: {}, unfinishedUpdate: null, watcherRestartFailed: false };
}

export interface NotifierDeps {
  http: HttpOut;
  outbox: OutboxStore;
  state: NotifyStateStore;
  clock: Clock;
  logger: Logger;
  /** This server's name, in every message. */
  host: string;
}

export interface NotifySettings {
  channels: ChannelConfig[];
  language: NotifyLanguage;
  /** Update outcomes that are sent. */
  outcomes: Outcome[];
  pingUrl: string | null;
  container: string;
}

export interface ChannelResult {
  channel: string;
  type: ChannelConfig["type"] | "ping";
  target: string;
  ok: boolean;
  error: string | null;
}

export interface ChannelStatus {
  name: string;
  type: ChannelConfig["type"] | "ping";
  target: string;
  lastDelivery: DeliveryRecord | null;
  lastFailure: DeliveryRecord | null;
}

export interface DeliveryRound {
  delivered: number;
  failed: number;
  dropped: number;
  /** Entries still waiting in the outbox. */
  pending: number;
}

export class Notifier {
  private readonly secrets: string[];
  private rejected: { windowStart: number; suppressed: number; last: Notification | null } = {
    windowStart: -Infinity,
    suppressed: 0,
    last: null,
  };
  private wake: (() => void) | null = null;
  /** Entries whose last attempt could not be recorded, and when to try them again (epoch ms). */
  private readonly heldUntil = new Map<string, number>();

  constructor(private readonly deps: NotifierDeps, readonly settings: NotifySettings) {
    this.secrets = secretsOf(settings.channels, settings.pingUrl);
  }

  /** Whether any channel is configured (nothing is queued or sent otherwise). */
  get enabled(): boolean {
    return this.settings.channels.length > 0;
  }

  /** A text with every secret of the configuration replaced by `***`. */
  scrub(text: string): string {
    return scrub(text, this.secrets);
  }

  private now(): Date {
    return this.deps.clock.now();
  }

  /** An update ended (from watch or from update on the command line). */
  async updateFinished(report: UpdateReport): Promise<void> {
    if (!this.enabled || !this.settings.outcomes.includes(report.outcome)) return;
    const n = this.notification("update", updateFields(report));
    if (report.outcome === "rejected") return await this.rejectedTrigger(n);
    await this.enqueue(n);
  }

  /**
   * A rejected trigger. At most one message per REJECTED_WINDOW_MS: the first is sent, the rest
   * of the window are counted and sent as one message when the window has passed.
   */
  private async rejectedTrigger(n: Notification): Promise<void> {
    const now = this.now().getTime();
    if (now - this.rejected.windowStart >= REJECTED_WINDOW_MS) {
      const before = this.rejected.suppressed;
      this.rejected = { windowStart: now, suppressed: 0, last: null };
      await this.enqueue({ ...n, count: 1 + before });
      return;
    }
    this.rejected.suppressed++;
    this.rejected.last = n;
  }

  /** Sends the count of rejected triggers held back once their window is over. */
  async flushRejected(): Promise<void> {
    const now = this.now().getTime();
    const { suppressed, last, windowStart } = this.rejected;
    if (suppressed === 0 || last === null || now - windowStart < REJECTED_WINDOW_MS) return;
    this.rejected = { windowStart: now, suppressed: 0, last: null };
    await this.enqueue({ ...last, count: suppressed, at: this.now().toISOString() });
  }

  /** Any other event: watcher restarts, Docker away and back, unfinished rollbacks. */
  async emit(event: EventName, fields: Partial<Notification> = {}): Promise<void> {
    if (!this.enabled) return;
    await this.enqueue(this.notification(event, fields));
  }

  /**
   * A rollback left unfinished: the journal (whose update id is `updateId`) holds what is left
   * to do, and the bot may be stopped. Reported once per journal.
   */
  async rollbackUnfinished(updateId: string, fields: Partial<Notification>): Promise<void> {
    if (!this.enabled) return;
    try {
      const state = await this.deps.state.read();
      if (state.unfinishedUpdate === updateId) return;
      await this.deps.state.update((s) => (s.unfinishedUpdate = updateId));
    } catch (err) {
      this.deps.logger.warn("cannot read the notification state", { error: this.why(err) });
    }
    await this.enqueue(this.notification("rollback_unfinished", { ...fields, updateId }));
  }

  /** A trigger the watcher refused (its status file entry): counted into bursts. */
  async triggerRejected(status: StatusFile): Promise<void> {
    if (!this.enabled || !this.settings.outcomes.includes("rejected")) return;
    await this.rejectedTrigger(this.notification("update", {
      outcome: "rejected",
      image: status.image === null ? null : printable(status.image, 200),
      requestId: status.requestId ? printable(status.requestId, 80) : null,
      updateId: status.id,
      error: status.error === null ? null : printable(status.error, ERROR_MAX),
      finishedAt: status.finishedAt,
    }));
  }

  /**
   * Recovery finished an update left in the journal: one the watcher reported unfinished, or
   * one a killed process left behind (never reported at all). Either way, say how it ended.
   */
  async rollbackFinished(report: UpdateReport): Promise<void> {
    if (!this.enabled) return;
    try {
      if ((await this.deps.state.read()).unfinishedUpdate !== null) {
        await this.deps.state.update((s) => (s.unfinishedUpdate = null));
      }
    } catch (err) {
      this.deps.logger.warn("cannot write the notification state", { error: this.why(err) });
    }
    await this.enqueue(this.notification("rollback_finished", updateFields(report)));
  }

  /** health: it restarted the watcher (ok) or could not; "could not" once until it is well. */
  async watcherRepair(ok: boolean, detail: string): Promise<void> {
    if (!this.enabled) return;
    if (ok) {
      await this.enqueue(this.notification("watcher_restarted", { detail: this.scrub(detail) }));
      await this.setRestartFailed(false);
      return;
    }
    let already = false;
    try {
      already = (await this.deps.state.read()).watcherRestartFailed;
    } catch {
      // Better a second message than none.
    }
    if (already) return;
    await this.enqueue(this.notification("watcher_restart_failed", { detail: this.scrub(detail) }));
    await this.setRestartFailed(true);
  }

  /** health found the watcher well: a later failure to restart it is reported again. */
  async watcherWell(): Promise<void> {
    if (!this.enabled) return;
    await this.setRestartFailed(false);
  }

  private async setRestartFailed(value: boolean) {
    try {
      const state = await this.deps.state.read();
      if (state.watcherRestartFailed !== value) {
        await this.deps.state.update((s) => (s.watcherRestartFailed = value));
      }
    } catch (err) {
      this.deps.logger.warn("cannot write the notification state", { error: this.why(err) });
    }
  }

  private notification(event: EventName, fields: Partial<Notification>): Notification {
    return newNotification({
      container: this.settings.container,
      ...fields,
      event,
      at: this.now().toISOString(),
      host: this.deps.host,
    });
  }

  /** One outbox entry per channel. Never throws. */
  private async enqueue(n: Notification): Promise<void> {
    const now = this.now().toISOString();
    for (const channel of this.settings.channels) {
      const entry: OutboxEntry = {
        id: `${n.id}-${channel.name}`,
        channel: channel.name,
        notification: n,
        createdAt: now,
        attempts: 0,
        nextAt: now,
        lastError: null,
      };
      try {
        const dropped = await this.deps.outbox.add(entry, MAX_OUTBOX);
        for (const d of dropped) {
          this.deps.logger.error("notification dropped: the outbox is full", {
            channel: d.channel,
            event: d.notification.event,
            notification: d.notification.id,
          });
        }
      } catch (err) {
        this.deps.logger.error("cannot queue a notification", {
          channel: channel.name,
          event: n.event,
          error: this.why(err),
        });
      }
    }
    this.deps.logger.debug("notification queued", { event: n.event, notification: n.id });
    this.wake?.();
  }

  /** When the next entry is due (epoch ms), or null when the outbox is empty. */
  async nextDueAt(): Promise<number | null> {
    const entries = await this.deps.outbox.list().catch(() => []);
    if (entries.length === 0) return null;
    return Math.min(...entries.map((e) => this.dueAt(e)));
  }

  /** When an entry is due: its nextAt, or later while an attempt on it failed to finish. */
  private dueAt(entry: OutboxEntry): number {
    return Math.max(Date.parse(entry.nextAt), this.heldUntil.get(entry.id) ?? 0);
  }

  /**
   * Tries every entry that is due, side by side. `only`: just these notification ids (the
   * update command delivers its own). Never throws.
   */
  async deliverDue(only?: Set<string>): Promise<DeliveryRound> {
    const round: DeliveryRound = { delivered: 0, failed: 0, dropped: 0, pending: 0 };
    let entries: OutboxEntry[];
    try {
      entries = await this.deps.outbox.list();
    } catch (err) {
      this.deps.logger.error("cannot read the notification outbox", { error: this.why(err) });
      return round;
    }
    const now = this.now().getTime();
    for (const id of this.heldUntil.keys()) {
      if (!entries.some((e) => e.id === id)) this.heldUntil.delete(id);
    }
    const due = entries.filter((e) =>
      this.dueAt(e) <= now && (only === undefined || only.has(e.notification.id))
    );
    round.pending = entries.length - due.length;
    await Promise.all(due.map(async (e) => {
      const result = await this.attempt(e.id);
      if (result === "delivered") round.delivered++;
      else if (result === "failed") {
        round.failed++;
        round.pending++;
      } else if (result === "dropped") round.dropped++;
    }));
    return round;
  }

  private async attempt(id: string): Promise<"delivered" | "failed" | "dropped" | "skipped"> {
    let taken: TakenEntry | null;
    try {
      taken = await this.deps.outbox.take(id);
    } catch (err) {
      this.deps.logger.error("cannot take a notification from the outbox", {
        error: this.why(err),
      });
      this.hold(id, HOLD_AFTER_ERROR_MS);
      return "skipped";
    }
    if (taken === null) return "skipped";
    const { entry } = taken;
    const n = entry.notification;
    let retryInMs = HOLD_AFTER_ERROR_MS;
    try {
      if (Date.parse(entry.nextAt) > this.now().getTime()) return "skipped";
      const channel = this.settings.channels.find((c) => c.name === entry.channel);
      if (!channel) {
        this.deps.logger.warn("notification dropped: its channel is no longer configured", {
          channel: entry.channel,
          event: n.event,
        });
        await taken.remove();
        return "dropped";
      }
      const verdict = await this.send(channel, n);
      const attempts = entry.attempts + 1;
      if (verdict.ok) {
        await taken.remove();
        await this.record(channel.name, { at: this.now().toISOString(), event: n.event }, true);
        this.deps.logger.info("notification delivered", {
          channel: channel.name,
          event: n.event,
          outcome: n.outcome ?? undefined,
          attempts,
        });
        return "delivered";
      }
      await this.record(channel.name, {
        at: this.now().toISOString(),
        event: n.event,
        error: verdict.error,
      }, false);
      if (attempts > RETRY_DELAYS_MS.length) {
        await taken.remove();
        this.deps.logger.error("notification dropped after its last attempt", {
          channel: channel.name,
          event: n.event,
          attempts,
          error: verdict.error,
        });
        return "dropped";
      }
      const delay = RETRY_DELAYS_MS[attempts - 1];
      retryInMs = delay;
      await taken.reschedule({
        ...entry,
        attempts,
        nextAt: new Date(this.now().getTime() + delay).toISOString(),
        lastError: verdict.error,
      });
      this.deps.logger.warn("notification not delivered; will retry", {
        channel: channel.name,
        event: n.event,
        attempts,
        retryInMs: delay,
        error: verdict.error,
      });
      return "failed";
    } catch (err) {
      this.deps.logger.error("notification attempt failed", { error: this.why(err) });
      // The outbox could not record the attempt (stateDir full, …): the entry still looks due,
      // so it is held here, or the channel would be tried again at once, over and over.
      this.hold(id, Math.max(retryInMs, HOLD_AFTER_ERROR_MS));
      return "skipped";
    } finally {
      await taken.release().catch(() => {});
    }
  }

  /** One attempt at one channel. The error it returns is free of secrets. */
  private async send(channel: ChannelConfig, n: Notification): Promise<Verdict> {
    try {
      const text = renderText(n, this.settings.language);
      const request = await buildRequest(channel, n, text, this.now());
      const answer = await this.deps.http.send(request, ATTEMPT_TIMEOUT_MS);
      const verdict = judgeAnswer(channel, answer);
      return verdict.ok ? verdict : { ok: false, error: this.scrub(verdict.error).slice(0, 300) };
    } catch (err) {
      return { ok: false, error: this.why(err) };
    }
  }

  private async record(channel: string, rec: DeliveryRecord, ok: boolean) {
    try {
      await this.deps.state.update((s) => {
        const c = s.channels[channel] ?? { lastDelivery: null, lastFailure: null };
        if (ok) c.lastDelivery = rec;
        else c.lastFailure = rec;
        s.channels[channel] = c;
      });
    } catch (err) {
      this.deps.logger.warn("cannot record the delivery", { channel, error: this.why(err) });
    }
  }

  /** `notify --test`: one test message to every channel, now, without the outbox. */
  async sendTest(): Promise<ChannelResult[]> {
    const n = this.notification("test", {});
    const results = await Promise.all(this.settings.channels.map(async (channel) => {
      const verdict = await this.send(channel, n);
      await this.record(channel.name, {
        at: this.now().toISOString(),
        event: "test",
        ...(verdict.ok ? {} : { error: verdict.error }),
      }, verdict.ok);
      return {
        channel: channel.name,
        type: channel.type,
        target: channelTarget(channel),
        ok: verdict.ok,
        error: verdict.ok ? null : verdict.error,
      } satisfies ChannelResult;
    }));
    return results;
  }

  /**
   * The dead-man's switch: `<pingUrl>` when all is well, `<pingUrl>/fail` when not. Null when no
   * pingUrl is configured. Never throws; the result is recorded as the channel "ping".
   */
  async ping(ok: boolean): Promise<ChannelResult | null> {
    const pingUrl = this.settings.pingUrl;
    if (!pingUrl) return null;
    let verdict: Verdict;
    try {
      verdict = judgePing(await this.deps.http.send(pingRequest(pingUrl, ok), ATTEMPT_TIMEOUT_MS));
    } catch (err) {
      verdict = { ok: false, error: this.why(err) };
    }
    const at = this.now().toISOString();
    await this.record(
      "ping",
      { at, event: "test", ...(verdict.ok ? {} : { error: verdict.error }) },
      verdict.ok,
    );
    if (!verdict.ok) {
      this.deps.logger.warn("ping not delivered", { error: verdict.error });
    }
    return {
      channel: "ping",
      type: "ping",
      target: redactUrl(ok ? pingUrl : `${pingUrl}/fail`),
      ok: verdict.ok,
      error: verdict.ok ? null : verdict.error,
    };
  }

  /** Per channel (and the ping), the last delivery and the last failure, for `status`. */
  async channelStatus(): Promise<ChannelStatus[]> {
    const state = await this.deps.state.read().catch(() => emptyNotifyState());
    const rows: ChannelStatus[] = this.settings.channels.map((c) => ({
      name: c.name,
      type: c.type,
      target: channelTarget(c),
      lastDelivery: state.channels[c.name]?.lastDelivery ?? null,
      lastFailure: state.channels[c.name]?.lastFailure ?? null,
    }));
    if (this.settings.pingUrl) {
      rows.push({
        name: "ping",
        type: "ping",
        target: redactUrl(this.settings.pingUrl),
        lastDelivery: state.channels.ping?.lastDelivery ?? null,
        lastFailure: state.channels.ping?.lastFailure ?? null,
      });
    }
    // What the state file says is ours, but scrub anyway: a secret changed in the config
    // would otherwise stay visible in an old error.
    for (const r of rows) {
      if (r.lastFailure?.error) r.lastFailure.error = this.scrub(r.lastFailure.error);
    }
    return rows;
  }

  /**
   * Delivers until the outbox is empty of due entries for `only`, or `waitMs` has passed
   * (`update` on the command line: what is not delivered by then stays queued).
   */
  async deliverWithin(waitMs: number, only?: Set<string>): Promise<DeliveryRound> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), waitMs);
    });
    try {
      const round = await Promise.race([this.deliverDue(only), timeout]);
      return round ?? { delivered: 0, failed: 0, dropped: 0, pending: -1 };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The watcher's background delivery: tries what is due, sleeps until the next entry is due
   * (at most `scanMs`, so entries other processes queued are found), wakes at once when this
   * process queues one. Returns when `signal` aborts.
   */
  async run(signal: AbortSignal, scanMs = 30_000): Promise<void> {
    while (!signal.aborted) {
      await this.deliverDue();
      await this.flushRejected();
      const next = await this.nextDueAt();
      const wait = next === null
        ? scanMs
        : Math.min(scanMs, Math.max(0, next - this.now().getTime()));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(wait, 50));
        function done() {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        }
        this.wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
      this.wake = null;
    }
  }

  private hold(id: string, ms: number): void {
    this.heldUntil.set(id, this.now().getTime() + ms);
  }

  private why(err: unknown): string {
    return this.scrub(err instanceof Error ? err.message : String(err)).slice(0, 300);
  }
}
