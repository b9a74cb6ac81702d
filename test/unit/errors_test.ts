import assert from "node:assert/strict";
import { ConfigError, describeError, DockerError, errorText } from "../../lib/errors.ts";
import { inspectContainerSafely } from "../../lib/health.ts";

Deno.test("errorText keeps the object and the whole chain of causes", () => {
  const root = Object.assign(new Error("Permission denied (os error 13)"), { code: "EACCES" });
  const mid = new ConfigError("cannot read config file", { object: "/etc/x.json", cause: root });
  const top = new Error("startup failed", { cause: mid });
  assert.equal(
    errorText(top),
    "startup failed: cannot read config file, '/etc/x.json': Permission denied (os error 13)",
  );
});

Deno.test("errorText does not repeat a cause the message already quotes", () => {
  const inner = new DockerError("manifest unknown", { status: 404 });
  const outer = new DockerError(inner.message, { object: "reg/app:9", cause: inner, status: 404 });
  assert.equal(errorText(outer), "manifest unknown, 'reg/app:9'");
});

Deno.test("errorText shows what is not an Error, and a cause that is not one", () => {
  assert.equal(errorText("plain"), "plain");
  assert.equal(errorText(new Error("failed", { cause: "socket closed" })), "failed: socket closed");
});

Deno.test("describeError gives main.ts the same text, the hint and the exit code", () => {
  const err = new DockerError("cannot reach Docker", {
    object: "/run/docker.sock",
    hint: "is it running?",
    cause: new Error("connection refused"),
  });
  assert.deepEqual(describeError(err), {
    message: "cannot reach Docker, '/run/docker.sock': connection refused",
    hint: "is it running?",
    exitCode: 4,
  });
  assert.deepEqual(describeError(new Error("x")), { message: "x", exitCode: 1 });
});

Deno.test("health reports why the bot could not be inspected, with the object and the cause", async () => {
  const docker = {
    inspectContainer: () =>
      Promise.reject(
        new DockerError("cannot reach the Docker daemon", {
          object: "/var/run/docker.sock",
          cause: new Error("Connection refused (os error 111)"),
        }),
      ),
  };
  const summary = await inspectContainerSafely(docker, "bot");
  assert.equal(
    summary.error,
    "cannot reach the Docker daemon, '/var/run/docker.sock': Connection refused (os error 111)",
  );
});
