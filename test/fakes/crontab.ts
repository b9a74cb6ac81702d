/** Our /etc/cron.d file, in memory. */

import type { CronTable } from "../../lib/adapters/crontab.ts";

export class FakeCronTable implements CronTable {
  readonly calls: string[] = [];
  constructor(public content: string | null = null, readonly path = "/etc/cron.d/hyperbot-ops") {}
  read(): Promise<string | null> {
    return Promise.resolve(this.content);
  }
  write(content: string): Promise<void> {
    this.calls.push("write");
    this.content = content;
    return Promise.resolve();
  }
  remove(): Promise<void> {
    this.calls.push("remove");
    this.content = null;
    return Promise.resolve();
  }
}
