import assert from "node:assert/strict";
import { detectComposeProject } from "../../lib/compose/project.ts";
import { checkChange, type PinPlan, planPin } from "../../lib/compose/plan.ts";
import type { ComposeProject } from "../../lib/compose/project.ts";
import { findEnvAssignment } from "../../lib/compose/dotenv.ts";

const DIR = "/opt/trading-system";
const YML = `${DIR}/docker-compose.yml`;
const OVERRIDE = `${DIR}/docker-compose.override.yml`;
const ENV = `${DIR}/.env`;
const NEW = "crpi.example.com/hyper-smart/hyper-smart:2.2.8";

function project(files = [YML], envFiles = [ENV]): ComposeProject {
  return {
    project: "trading",
    service: "app",
    workingDir: DIR,
    configFiles: files,
    envFiles,
    composeVersion: "1.29.2",
  };
}

function plan(files: Record<string, string>, target = NEW, p = project()): PinPlan {
  return planPin(p, new Map(Object.entries(files)), target);
}

/** The text after the change, and the assertion that only the value changed. */
function changed(files: Record<string, string>, target = NEW, p = project()) {
  const result = plan(files, target, p);
  assert.equal(result.kind, "change", JSON.stringify(result));
  if (result.kind !== "change") throw new Error("unreachable");
  const { change } = result;
  assert.equal(
    checkChange(p, new Map(Object.entries(files)), change, target),
    null,
    "the edited file reads back as the target",
  );
  return change;
}

// Each case: a compose file as operators write them, the exact text expected after the pin.
const EDITS: { name: string; before: string; after: string }[] = [
  {
    name: "plain value with comments, odd spacing and key order",
    before: "# the bot\nservices:\n  app:   # main\n    container_name: trading-system-app\n" +
      "    image:    crpi.example.com/hyper-smart/hyper-smart:2.2.7     # pinned by hand\n" +
      "    restart: always\n",
    after: "# the bot\nservices:\n  app:   # main\n    container_name: trading-system-app\n" +
      "    image:    crpi.example.com/hyper-smart/hyper-smart:2.2.8     # pinned by hand\n" +
      "    restart: always\n",
  },
  {
    name: "single-quoted value",
    before: "services:\n  app:\n    image: 'crpi.example.com/hyper-smart/hyper-smart:2.2.7'\n",
    after: "services:\n  app:\n    image: 'crpi.example.com/hyper-smart/hyper-smart:2.2.8'\n",
  },
  {
    name: "double-quoted value",
    before: 'services:\n  app:\n    image: "crpi.example.com/hyper-smart/hyper-smart:2.2.7"\n',
    after: 'services:\n  app:\n    image: "crpi.example.com/hyper-smart/hyper-smart:2.2.8"\n',
  },
  {
    name: "CRLF line ends",
    before: "services:\r\n  app:\r\n    image: crpi.example.com/hyper-smart/hyper-smart:2.2.7\r\n" +
      "    ports:\r\n      - '8080:8080'\r\n",
    after: "services:\r\n  app:\r\n    image: crpi.example.com/hyper-smart/hyper-smart:2.2.8\r\n" +
      "    ports:\r\n      - '8080:8080'\r\n",
  },
  {
    name: "a byte order mark",
    before:
      "\uFEFFversion: '3.8'\nservices:\n  app:\n    image: crpi.example.com/hyper-smart/hyper-smart:2.2.7\n",
    after:
      "\uFEFFversion: '3.8'\nservices:\n  app:\n    image: crpi.example.com/hyper-smart/hyper-smart:2.2.8\n",
  },
  {
    name: "flow mappings",
    before:
      "services: { app: { image: crpi.example.com/hyper-smart/hyper-smart:2.2.7, restart: always } }\n",
    after:
      "services: { app: { image: crpi.example.com/hyper-smart/hyper-smart:2.2.8, restart: always } }\n",
  },
  {
    name: "anchors elsewhere in the file (x- extension, merge key with an own image)",
    before: "x-common: &common\n  restart: always\n  logging: { driver: json-file }\n" +
      "services:\n  app:\n    <<: *common\n    image: crpi.example.com/hyper-smart/hyper-smart:2.2.7\n" +
      "  redis:\n    <<: *common\n    image: redis:7\n",
    after: "x-common: &common\n  restart: always\n  logging: { driver: json-file }\n" +
      "services:\n  app:\n    <<: *common\n    image: crpi.example.com/hyper-smart/hyper-smart:2.2.8\n" +
      "  redis:\n    <<: *common\n    image: redis:7\n",
  },
  {
    name: "extends with an own image (the own one wins)",
    before: "services:\n  app:\n    extends: { file: common.yml, service: base }\n" +
      "    image: crpi.example.com/hyper-smart/hyper-smart:2.2.7\n",
    after: "services:\n  app:\n    extends: { file: common.yml, service: base }\n" +
      "    image: crpi.example.com/hyper-smart/hyper-smart:2.2.8\n",
  },
  {
    name: "tabs in a comment and a document start marker",
    before:
      "---\nservices:\n\n  app:\n    image: crpi.example.com/hyper-smart/hyper-smart:2.2.7\t# \tv\n",
    after:
      "---\nservices:\n\n  app:\n    image: crpi.example.com/hyper-smart/hyper-smart:2.2.8\t# \tv\n",
  },
  {
    name: "non-ASCII comments",
    before:
      "services:\n  app:  # 交易机器人\n    image: crpi.example.com/hyper-smart/hyper-smart:2.2.7 # 版本 ✓\n",
    after:
      "services:\n  app:  # 交易机器人\n    image: crpi.example.com/hyper-smart/hyper-smart:2.2.8 # 版本 ✓\n",
  },
];

for (const c of EDITS) {
  Deno.test(`compose pin rewrites only the image value: ${c.name}`, () => {
    const change = changed({ [YML]: c.before });
    assert.equal(change.file, YML);
    assert.equal(change.after, c.after);
  });
}

Deno.test("compose pin keeps the repository as the file writes it (docker.io/library form)", () => {
  const change = changed(
    { [YML]: "services:\n  app:\n    image: docker.io/library/busybox:1.35\n" },
    "busybox:1.36",
  );
  assert.equal(change.after, "services:\n  app:\n    image: docker.io/library/busybox:1.36\n");
});

Deno.test("compose pin changes nothing when the file already names the image", () => {
  const result = plan({ [YML]: "services:\n  app:\n    image: busybox\n" }, "busybox:latest");
  assert.equal(result.kind, "agrees");
});

const ENV_EDITS: { name: string; image: string; env: string; after: string; target?: string }[] = [
  {
    name: "${VAR}",
    image: "${BOT_IMAGE}",
    env: "# set by ops\nBOT_IMAGE=crpi.example.com/hyper-smart/hyper-smart:2.2.7\nOTHER=1\n",
    after: "# set by ops\nBOT_IMAGE=crpi.example.com/hyper-smart/hyper-smart:2.2.8\nOTHER=1\n",
  },
  {
    name: "${VAR:-default}",
    image: '"${BOT_IMAGE:-crpi.example.com/hyper-smart/hyper-smart:1.0.0}"',
    env: 'BOT_IMAGE="crpi.example.com/hyper-smart/hyper-smart:2.2.7"   # quoted\r\n',
    after: 'BOT_IMAGE="crpi.example.com/hyper-smart/hyper-smart:2.2.8"   # quoted\r\n',
  },
  {
    name: "$VAR, export and spaces around =",
    image: "$BOT_IMAGE",
    env: "export BOT_IMAGE = 'crpi.example.com/hyper-smart/hyper-smart:2.2.7'\n",
    after: "export BOT_IMAGE = 'crpi.example.com/hyper-smart/hyper-smart:2.2.8'\n",
  },
  {
    name: "a tag variable inside the reference",
    image: "crpi.example.com/hyper-smart/hyper-smart:${TAG}",
    env: "\uFEFFTAG=2.2.7 # the version\n",
    after: "\uFEFFTAG=2.2.8 # the version\n",
  },
  {
    name: "${VAR:-default} with an empty value in .env",
    image: "${BOT_IMAGE:-crpi.example.com/hyper-smart/hyper-smart:2.2.7}",
    env: "BOT_IMAGE=\n",
    after: "BOT_IMAGE=crpi.example.com/hyper-smart/hyper-smart:2.2.8\n",
  },
];

for (const c of ENV_EDITS) {
  Deno.test(`compose pin rewrites the .env line for ${c.name}`, () => {
    const yml = `services:\n  app:\n    image: ${c.image}  # from .env\n`;
    const change = changed({ [YML]: yml, [ENV]: c.env });
    assert.equal(change.file, ENV);
    assert.equal(change.after, c.after);
  });
}

// The cases that must change nothing: each names the file and the line to edit by hand.
const REFUSALS: {
  name: string;
  files: Record<string, string>;
  file: string;
  line: number | null;
  reason: RegExp;
  configFiles?: string[];
}[] = [
  {
    name: "the variable comes from the environment",
    files: { [YML]: "services:\n  app:\n    image: ${BOT_IMAGE}\n", [ENV]: "OTHER=1\n" },
    file: YML,
    line: 3,
    reason: /BOT_IMAGE is not set in .*environment/,
  },
  {
    name: "no .env at all",
    files: { [YML]: "services:\n  app:\n    image: ${BOT_IMAGE:-app:1}\n" },
    file: YML,
    line: 3,
    reason: /not set/,
  },
  {
    name: "the variable is set twice in .env",
    files: {
      [YML]: "services:\n  app:\n    image: ${BOT_IMAGE}\n",
      [ENV]: "BOT_IMAGE=a:1\n\nBOT_IMAGE=a:2\n",
    },
    file: ENV,
    line: 3,
    reason: /more than once/,
  },
  {
    name: "the image is set in two config files",
    files: {
      [YML]: "services:\n  app:\n    image: app:1\n",
      [OVERRIDE]: "services:\n  app:\n    image: app:2\n",
    },
    configFiles: [YML, OVERRIDE],
    file: YML,
    line: 3,
    reason: /several files: .*docker-compose.yml line 3 and .*override.yml line 3/,
  },
  {
    name: "extends feeds the image",
    files: {
      [YML]: "services:\n  app:\n    extends:\n      service: base\n  base:\n    image: a:1\n",
    },
    file: YML,
    line: 3,
    reason: /through extends/,
  },
  {
    name: "an anchor feeds the image through a merge key",
    files: {
      [YML]: "x-bot: &bot\n  image: app:1\nservices:\n  app:\n    <<: *bot\n    restart: always\n",
    },
    file: YML,
    line: 5,
    reason: /merge key/,
  },
  {
    name: "the image is an alias",
    files: { [YML]: "x-img: &img app:1\nservices:\n  app:\n    image: *img\n" },
    file: YML,
    line: 4,
    reason: /alias/,
  },
  {
    name: "the image carries an anchor",
    files: { [YML]: "services:\n  app:\n    image: &img app:1\n  b:\n    image: *img\n" },
    file: YML,
    line: 3,
    reason: /anchor/,
  },
  {
    name: "the service is an alias",
    files: { [YML]: "x: &b\n  image: app:1\nservices:\n  app: *b\n" },
    file: YML,
    line: 4,
    reason: /alias/,
  },
  {
    name: "multi-document file",
    files: { [YML]: "services:\n  app:\n    image: app:1\n---\nservices: {}\n" },
    file: YML,
    line: 4,
    reason: /several YAML documents/,
  },
  {
    name: "unparseable file",
    files: { [YML]: "services:\n  app:\n    image: app:1\n   bad: [\n" },
    file: YML,
    line: 4,
    reason: /cannot be parsed/,
  },
  {
    name: "duplicate image keys",
    files: { [YML]: "services:\n  app:\n    image: app:1\n    image: app:2\n" },
    file: YML,
    line: 4,
    reason: /cannot be parsed/,
  },
  {
    name: "a block scalar",
    files: { [YML]: "services:\n  app:\n    image: >-\n      app:1\n" },
    file: YML,
    line: 3,
    reason: /spans several lines|block/,
  },
  {
    name: "an escape in a double-quoted value",
    files: { [YML]: 'services:\n  app:\n    image: "app\\x3a1"\n' },
    file: YML,
    line: 3,
    reason: /escapes/,
  },
  {
    name: "two variables",
    files: { [YML]: "services:\n  app:\n    image: ${REPO}:${TAG}\n", [ENV]: "REPO=a\nTAG=1\n" },
    file: YML,
    line: 3,
    reason: /interpolation/,
  },
  {
    name: "a ${VAR:?error} form",
    files: {
      [YML]: "services:\n  app:\n    image: ${BOT_IMAGE:?set it}\n",
      [ENV]: "BOT_IMAGE=a:1\n",
    },
    file: YML,
    line: 3,
    reason: /interpolation/,
  },
  {
    name: "a .env value with a variable in it",
    files: {
      [YML]: "services:\n  app:\n    image: ${BOT_IMAGE}\n",
      [ENV]: "BOT_IMAGE=${REPO}:1\n",
    },
    file: ENV,
    line: 1,
    reason: /'\$'/,
  },
  {
    name: "the service has no image (built here)",
    files: { [YML]: "services:\n  app:\n    build: .\n" },
    file: YML,
    line: null,
    reason: /no image/,
  },
  {
    name: "the new tag cannot go through a tag variable",
    files: {
      [YML]: "services:\n  app:\n    image: other.example.com/x/y:${TAG}\n",
      [ENV]: "TAG=1\n",
    },
    file: YML,
    line: 3,
    reason: /cannot be written through \$\{TAG\}/,
  },
  {
    name: "a missing compose file",
    files: {},
    file: YML,
    line: null,
    reason: /missing/,
  },
];

for (const c of REFUSALS) {
  Deno.test(`compose pin refuses, naming the file and line, when ${c.name}`, () => {
    const result = plan(c.files, NEW, project(c.configFiles));
    assert.equal(result.kind, "refused", JSON.stringify(result));
    if (result.kind !== "refused") return;
    assert.equal(result.at.file, c.file);
    assert.equal(result.at.line, c.line);
    assert.match(result.reason, c.reason);
  });
}

Deno.test("an override file that does not set the image leaves the base file's to edit", () => {
  const p = project([YML, OVERRIDE]);
  const change = changed(
    {
      [YML]: "services:\n  app:\n    image: app:1\n",
      [OVERRIDE]: "services:\n  app:\n    environment: [A=1]\n",
    },
    "app:2",
    p,
  );
  assert.equal(change.file, YML);
  assert.equal(change.after, "services:\n  app:\n    image: app:2\n");
});

Deno.test(".env parsing: the first line, a later line, unrelated look-alikes", () => {
  const text = "BOT_IMAGE_OLD=x\n#BOT_IMAGE=y\nBOT_IMAGE=a:1\r\n";
  const found = findEnvAssignment(text, "BOT_IMAGE");
  assert.equal(found.kind, "value");
  if (found.kind !== "value") return;
  assert.equal(found.value, "a:1");
  assert.equal(found.span.line, 3);
  assert.equal(text.slice(found.span.start, found.span.end), "a:1");
});

Deno.test("compose labels: v1 and v2 sets, relative files, missing labels", () => {
  const v1Labels = {
    "com.docker.compose.project": "trading",
    "com.docker.compose.service": "app",
    "com.docker.compose.project.working_dir": "/opt/trading-system",
    "com.docker.compose.project.config_files": "docker-compose.yml,/etc/extra.yml",
    "com.docker.compose.version": "1.29.2",
  };
  const v1 = detectComposeProject(v1Labels, { "org.opencontainers.image.version": "1" });
  assert.deepEqual(v1.managed && v1.project, {
    project: "trading",
    service: "app",
    workingDir: "/opt/trading-system",
    configFiles: ["/opt/trading-system/docker-compose.yml", "/etc/extra.yml"],
    envFiles: ["/opt/trading-system/.env"],
    composeVersion: "1.29.2",
  });
  const v2 = detectComposeProject({
    "com.docker.compose.project": "trading",
    "com.docker.compose.service": "app",
    "com.docker.compose.project.working_dir": "/srv/bot",
    "com.docker.compose.project.config_files": "/srv/bot/compose.yaml",
    "com.docker.compose.project.environment_file": "/srv/bot/prod.env",
    "com.docker.compose.version": "2.24.5",
  }, {});
  assert.deepEqual(v2.managed && v2.project && v2.project.envFiles, ["/srv/bot/prod.env"]);
  assert.deepEqual(detectComposeProject({ other: "x" }, {}), { managed: false });
  assert.deepEqual(detectComposeProject(null, {}), { managed: false });
  const partial = detectComposeProject({ "com.docker.compose.project": "trading" }, {});
  assert.equal(partial.managed && partial.project, null);
  assert.match(partial.managed && partial.project === null ? partial.reason : "", /service/);
  const fromImage = detectComposeProject(v1Labels, { "com.docker.compose.project": "x" });
  assert.match(
    fromImage.managed && fromImage.project === null ? fromImage.reason : "",
    /image itself/,
  );
  const stdin = detectComposeProject({
    "com.docker.compose.project": "t",
    "com.docker.compose.service": "app",
    "com.docker.compose.project.working_dir": "/x",
    "com.docker.compose.project.config_files": "-",
  }, {});
  assert.match(stdin.managed && stdin.project === null ? stdin.reason : "", /standard input/);
});
