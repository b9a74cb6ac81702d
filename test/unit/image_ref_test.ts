import assert from "node:assert/strict";
import { RejectedError } from "../../lib/errors.ts";
import {
  checkImageRef,
  formatImageRef,
  isAllowed,
  parseImageRef,
  repositoryOf,
} from "../../lib/image_ref.ts";

Deno.test("image references parse with registry host, port, path, tag and digest", () => {
  const digest = "sha256:" + "a".repeat(64);
  const cases: [string, { domain: string; path: string; tag?: string; digest?: string }][] = [
    ["app", { domain: "docker.io", path: "library/app" }],
    ["app:1.2.3", { domain: "docker.io", path: "library/app", tag: "1.2.3" }],
    ["org/app:latest", { domain: "docker.io", path: "org/app", tag: "latest" }],
    ["localhost/app", { domain: "localhost", path: "app" }],
    ["localhost:5000/app:v1", { domain: "localhost:5000", path: "app", tag: "v1" }],
    ["127.0.0.1:5000/hyperbot/app:v2", {
      domain: "127.0.0.1:5000",
      path: "hyperbot/app",
      tag: "v2",
    }],
    [
      "crpi-avgutp4svf3qvj1p.ap-northeast-1.personal.cr.aliyuncs.com/hyper-smart/hyper-smart:2.2.7",
      {
        domain: "crpi-avgutp4svf3qvj1p.ap-northeast-1.personal.cr.aliyuncs.com",
        path: "hyper-smart/hyper-smart",
        tag: "2.2.7",
      },
    ],
    [`reg.example.com/a/b/c@${digest}`, { domain: "reg.example.com", path: "a/b/c", digest }],
    [`reg.example.com/a:t@${digest}`, { domain: "reg.example.com", path: "a", tag: "t", digest }],
    ["[::1]:5000/app:x", { domain: "[::1]:5000", path: "app", tag: "x" }],
    ["a__b/c--d.e_f:T_a.g-1", { domain: "docker.io", path: "a__b/c--d.e_f", tag: "T_a.g-1" }],
  ];
  for (const [text, want] of cases) {
    const got = parseImageRef(text);
    assert.deepEqual({ ...got }, { tag: undefined, digest: undefined, ...want }, text);
  }
});

Deno.test("malformed image references are rejected with the reason", () => {
  const bad = [
    "",
    " app",
    "app ",
    "app\n",
    "app:1\nother:2",
    "App",
    "org/App:1",
    "app:",
    "app:-1",
    "app:" + "x".repeat(129),
    "app@sha256:abc",
    "app@md5",
    "/app",
    "app/",
    "a//b",
    "reg.example.com:port/app",
    "-reg.example.com/app",
    "app:1;rm -rf /",
    "$(reboot)",
    "`id`",
    "app:1|sh",
    "a".repeat(300),
    "app\u0000",
  ];
  for (const text of bad) {
    assert.throws(() => parseImageRef(text), RejectedError, JSON.stringify(text));
  }
});

Deno.test("a reference without tag or digest is pulled as latest", () => {
  assert.equal(
    formatImageRef(parseImageRef("reg.example.com/org/app")),
    "reg.example.com/org/app:latest",
  );
  assert.equal(formatImageRef(parseImageRef("docker.io/library/app:1")), "app:1");
});

Deno.test("allowedImages matches repositories in any spelling", () => {
  const ref = parseImageRef("app:2");
  assert.equal(repositoryOf(ref), "docker.io/library/app");
  assert.ok(isAllowed(ref, ["docker.io/library/app"]));
  assert.ok(isAllowed(ref, ["app"]));
  assert.ok(!isAllowed(ref, ["other"]));
  assert.ok(!isAllowed(parseImageRef("evil.example.com/app:1"), ["app"]));
  assert.throws(
    () => checkImageRef("evil.example.com/org/app:1", ["reg.example.com/org/app"]),
    RejectedError,
  );
  assert.equal(checkImageRef("reg.example.com/org/app:1", ["reg.example.com/org/app"]).tag, "1");
});
