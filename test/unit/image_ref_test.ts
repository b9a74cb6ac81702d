import assert from "node:assert/strict";
import { RejectedError } from "../../lib/errors.ts";
import {
  checkImageRef,
  formatImageRef,
  isAllowed,
  parseImageRef,
  repositoryOf,
} from "../../lib/image_ref.ts";
import { printable } from "../../lib/printable.ts";

/** The RejectedError `fn` throws (the test fails when it returns or throws anything else). */
function rejection(fn: () => unknown, label: string): RejectedError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof RejectedError, `${label}: ${e}`);
    return e;
  }
  throw new assert.AssertionError({ message: `${label}: not rejected` });
}

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
  const WS = "it contains whitespace or control characters";
  const TAG = "the tag may only hold letters, digits, '_', '.' and '-'";
  const DIGEST = "the digest is not algorithm:hex";
  const PATH = "the repository path must be lower-case letters, digits and separators";
  const HOST = "the registry host is not a valid host[:port]";
  const bad: [string, string][] = [
    ["", "it is empty"],
    [" app", WS],
    ["app ", WS],
    ["app\n", WS],
    ["app\t:1", WS],
    ["app:1\nother:2", WS],
    ["app\u0000", WS],
    ["app\u007f", WS],
    ["App", PATH],
    ["org/App:1", PATH],
    ["app:", TAG],
    ["app:-1", TAG],
    ["app:" + "x".repeat(129), TAG],
    ["app@sha256:abc", DIGEST],
    ["app@md5", DIGEST],
    ["@sha256:" + "a".repeat(64), "the repository name is missing"],
    [":1", "the repository name is missing"],
    ["/app", PATH],
    ["app/", PATH],
    ["a//b", PATH],
    ["reg.example.com:port/app", HOST],
    ["-reg.example.com/app", HOST],
    ["app:1;rm -rf /", WS],
    ["$(reboot)", PATH],
    ["`id`", PATH],
    ["app:1|sh", TAG],
    ["a".repeat(256), "the repository name is too long"],
    ["f".repeat(64), "it is a 64-character hex image ID, not a repository name"],
    ["f".repeat(64) + ":latest", "it is a 64-character hex image ID, not a repository name"],
    ["a".repeat(513), "it is longer than 512 characters"],
  ];
  for (const [text, why] of bad) {
    const label = JSON.stringify(text);
    const e = rejection(() => parseImageRef(text), label);
    assert.equal(e.message, `invalid image reference: ${why}`, label);
    assert.equal(e.hint, "write a reference such as registry.example.com/org/app:1.2.3", label);
    assert.equal(e.object, printable(text), label);
  }
});

Deno.test("references at the length limits parse; one character more is refused", () => {
  // 512 characters in all: a 255-character name and a 128-character tag are both at their limit.
  const name = "reg.example.com/" + "a".repeat(255 - "reg.example.com/".length);
  assert.equal(parseImageRef(name).path, "a".repeat(239));
  assert.equal(parseImageRef(`${name}:${"t".repeat(128)}`).tag, "t".repeat(128));
  const long = `${name}:${"t".repeat(128)}@sha256:${"a".repeat(512 - 255 - 129 - 8)}`;
  assert.equal(long.length, 512);
  assert.equal(parseImageRef(long).domain, "reg.example.com");
  assert.throws(() => parseImageRef(`${long}a`), /longer than 512/);
});

Deno.test("the first component is a registry host exactly as Docker decides", () => {
  // Upper case makes it a host (Docker's rule), a dot inside a single component does not.
  assert.deepEqual({ ...parseImageRef("Example/app:1") }, {
    domain: "Example",
    path: "app",
    tag: "1",
    digest: undefined,
  });
  assert.deepEqual({ ...parseImageRef("a.b") }, {
    domain: "docker.io",
    path: "library/a.b",
    tag: undefined,
    digest: undefined,
  });
  assert.equal(parseImageRef("localhost").path, "library/localhost");
  // 63 or 65 hex characters are a name like any other (Docker refuses exactly 64).
  assert.equal(parseImageRef("f".repeat(63)).path, `library/${"f".repeat(63)}`);
  assert.equal(parseImageRef("f".repeat(65)).path, `library/${"f".repeat(65)}`);
});

Deno.test("a reference without tag or digest is pulled as latest", () => {
  assert.equal(
    formatImageRef(parseImageRef("reg.example.com/org/app")),
    "reg.example.com/org/app:latest",
  );
  assert.equal(formatImageRef(parseImageRef("docker.io/library/app:1")), "app:1");
  assert.equal(formatImageRef(parseImageRef("docker.io/org/app:1")), "org/app:1");
  const digest = "sha256:" + "b".repeat(64);
  assert.equal(formatImageRef(parseImageRef(`app@${digest}`)), `app@${digest}`);
  assert.equal(
    formatImageRef(parseImageRef(`reg.example.com/app:2@${digest}`)),
    `reg.example.com/app:2@${digest}`,
  );
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
  // Any one entry allows; an entry that is not a reference allows nothing.
  assert.ok(isAllowed(ref, ["other", "app"]));
  assert.ok(!isAllowed(ref, ["Not A Ref"]));
  assert.ok(isAllowed(ref, ["Not A Ref", "app"]));
});

Deno.test("a repository outside allowedImages is refused naming it and the list", () => {
  const refused = (allowed: string[]) =>
    rejection(() => checkImageRef("evil.example.com/org/app:1", allowed), "allowed");
  const e = refused(["reg.example.com/org/app", "app"]);
  assert.equal(e.message, "repository is not in allowedImages");
  assert.equal(e.object, "evil.example.com/org/app");
  assert.equal(e.hint, "allowed: reg.example.com/org/app, app");
  assert.equal(refused([]).hint, "allowed: (none)");
});
