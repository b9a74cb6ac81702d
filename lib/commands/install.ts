import type { Command } from "./common.ts";
import { NotImplementedError } from "../errors.ts";

export const installCommand: Command = {
  name: "install",
  summary: "(not yet implemented)",
  help: "hyperbot-ops install: not yet implemented",
  run() {
    return Promise.reject(new NotImplementedError("not yet implemented", { object: "install" }));
  },
};
