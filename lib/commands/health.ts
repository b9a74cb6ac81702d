import type { Command } from "./common.ts";
import { NotImplementedError } from "../errors.ts";

export const healthCommand: Command = {
  name: "health",
  summary: "(not yet implemented)",
  help: "hyperbot-ops health: not yet implemented",
  run() {
    return Promise.reject(new NotImplementedError("not yet implemented", { object: "health" }));
  },
};
