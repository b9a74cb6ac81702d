import type { Command } from "./common.ts";
import { NotImplementedError } from "../errors.ts";

export const statusCommand: Command = {
  name: "status",
  summary: "(not yet implemented)",
  help: "hyperbot-ops status: not yet implemented",
  run() {
    return Promise.reject(new NotImplementedError("not yet implemented", { object: "status" }));
  },
};
