/**
 * The bot's downtime during one update, measured by the update itself: from the moment the old
 * container has stopped until a bot container has started again. Forward, that is the new
 * container's start; after a rollback, the old container's start again (the new one, which
 * failed, does not count as the bot running), so a rollback reports the total time the bot was
 * not running.
 */

import type { Containers } from "../docker.ts";
import type { Clock } from "../state.ts";

export class DowntimeMeter {
  #downAt: number | null = null;
  #upAt: number | null = null;

  constructor(private readonly clock: Pick<Clock, "now">) {}

  /** The old container has stopped. Only the first call counts (a rollback may stop it again). */
  down(at = this.clock.now()) {
    if (this.#downAt === null) this.#downAt = at.getTime();
  }

  /** A bot container has started. The last call counts (a rollback starts the old one again). */
  up(at = this.clock.now()) {
    if (this.#downAt !== null) this.#upAt = Math.max(at.getTime(), this.#downAt);
  }

  /**
   * Milliseconds from down to up: 0 when the bot was never taken down, null when it was taken
   * down and no bot container has started since (the bot is still down).
   */
  ms(): number | null {
    if (this.#downAt === null) return 0;
    return this.#upAt === null ? null : this.#upAt - this.#downAt;
  }
}

/**
 * `docker` with the meter watching it: a stop of the running bot's old container (`isOld`) marks
 * the bot down when it returns, every start marks it up when it returns. The rest passes
 * through unchanged.
 */
export function meteredContainers<T extends Containers>(
  docker: T,
  meter: DowntimeMeter,
  isOld: (id: string) => boolean,
): T {
  return new Proxy(docker, {
    get(target, prop, receiver) {
      if (prop === "stopContainer") {
        return async (id: string, options?: Parameters<Containers["stopContainer"]>[1]) => {
          await target.stopContainer(id, options);
          if (isOld(id)) meter.down();
        };
      }
      if (prop === "startContainer") {
        return async (id: string) => {
          await target.startContainer(id);
          meter.up();
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
