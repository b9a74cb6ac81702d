import type { Command } from "./common.ts";
import { NotImplementedError } from "../errors.ts";

export const watchCommand: Command = {
  name: "watch",
  summary: "(not yet implemented)",
  help: "hyperbot-ops watch: not yet implemented",
  run() {
    return Promise.reject(new NotImplementedError("not yet implemented", { object: "watch" }));
  },
};
