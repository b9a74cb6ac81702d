/**
 * The real files install touches (the adapter behind InstallFiles in lib/install/apply.ts).
 */

import { dirname } from "node:path";
import { writeFileAtomic } from "./files.ts";
import type { InstallFiles } from "../install/apply.ts";
import type { CurrentFile } from "../install/plan.ts";

export class HostInstallFiles implements InstallFiles {
  async read(path: string): Promise<CurrentFile | null> {
    try {
      const info = await Deno.stat(path);
      if (!info.isFile) return null;
      return { content: await Deno.readTextFile(path), mode: (info.mode ?? 0) & 0o7777 };
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
  }

  async dirMode(path: string): Promise<number | null> {
    try {
      const info = await Deno.stat(path);
      return info.isDirectory ? (info.mode ?? 0) & 0o7777 : null;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
  }

  async write(path: string, content: string, mode: number): Promise<void> {
    await this.ensureParent(path);
    await writeFileAtomic(path, content, { mode });
  }

  async mkdir(path: string, mode: number): Promise<void> {
    await this.ensureParent(path);
    await Deno.mkdir(path, { recursive: true, mode });
    // The process umask (027) narrows the mode given to mkdir.
    await Deno.chmod(path, mode);
  }

  async chmod(path: string, mode: number): Promise<void> {
    await Deno.chmod(path, mode);
  }

  async remove(path: string): Promise<void> {
    await Deno.remove(path).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }

  async removeDir(path: string, recursive: boolean): Promise<boolean> {
    try {
      await Deno.remove(path, { recursive });
      return true;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return true;
      if (!recursive && /not empty/i.test((err as Error).message)) return false;
      throw err;
    }
  }

  private async ensureParent(path: string) {
    const parent = dirname(path);
    if ((await this.dirMode(parent)) !== null) return;
    await Deno.mkdir(parent, { recursive: true, mode: 0o755 });
    await Deno.chmod(parent, 0o755);
  }
}
