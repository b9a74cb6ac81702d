#!/usr/bin/env bash
# Prepares everything the real-engine and end-to-end tests need, and is safe to run again:
#   1. Deno and the Debian packages (docker.io docker-registry busybox-static apache2-utils
#      debootstrap, curl), installed only when missing
#   2. a Docker daemon (started in the background when `docker info` fails)
#   3. a private registry on 127.0.0.1:5000 with htpasswd auth (user hyperbot)
#   4. a test docker login in /var/lib/hyperbot-test/docker-config (never ~/.docker)
#   5. the test images 127.0.0.1:5000/hyperbot/app:{v1,v2,crash,unhealthy,healthy-v1,
#      healthy-v2,slow-healthy}, built offline from test/fixtures/images/ and pushed;
#      an image whose Dockerfiles are unchanged is not rebuilt
#
# Usage: bash scripts/test-env.sh        (as root, on Debian 12; run it, do not source it)
# The tests read the same names from test/support/env.ts; keep the two in step.
set -euo pipefail

readonly STATE_DIR=/var/lib/hyperbot-test
readonly REGISTRY=127.0.0.1:5000
readonly REGISTRY_USER=hyperbot
readonly REGISTRY_PASSWORD=hyperbot-test-pw
readonly REPOSITORY="$REGISTRY/hyperbot/app"
readonly DOCKER_CONFIG_DIR="$STATE_DIR/docker-config"
readonly REGISTRY_CONFIG="$STATE_DIR/registry.yml"
readonly REGISTRY_HTPASSWD="$STATE_DIR/htpasswd"
readonly REGISTRY_STORAGE="$STATE_DIR/registry"
readonly REGISTRY_PIDFILE="$STATE_DIR/registry.pid"
readonly REGISTRY_LOG=/var/log/hyperbot-test-registry.log
readonly DOCKERD_LOG=/var/log/hyperbot-test-dockerd.log
readonly BUILD_LOG="$STATE_DIR/build.log"
readonly BASE_IMAGE=hyperbot-test/base:busybox
readonly HASH_LABEL=hyperbot.test.build-hash
readonly IMAGE_TAGS=(v1 v2 crash unhealthy healthy-v1 healthy-v2 slow-healthy)
readonly APT_PACKAGES=(docker.io docker-registry busybox-static apache2-utils debootstrap curl docker-compose prometheus prometheus-node-exporter)
readonly DENO_NPM_PACKAGE=deno@2.9.6

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly FIXTURES="$ROOT/test/fixtures/images"
SECONDS=0

STEP="checking the basics"
FAILED=""

say() { printf 'test-env: %s\n' "$*"; }
fail() { # message [hint]
  FAILED=1
  printf 'test-env: error: %s: %s\n' "$STEP" "$1" >&2
  if [[ -n "${2:-}" ]]; then printf 'test-env: hint: %s\n' "$2" >&2; fi
  exit 1
}
# Any other failure (set -e) still ends with one line naming the step and the command.
on_exit() {
  local code=$? command=$BASH_COMMAND
  if ((code != 0)) && [[ -z "$FAILED" ]]; then
    printf 'test-env: error: %s failed (exit %s) at: %s\n' "$STEP" "$code" "$command" >&2
  fi
  remove_policy_rc_d
}
POLICY_RC_D_OURS=""
remove_policy_rc_d() {
  if [[ -n "$POLICY_RC_D_OURS" ]]; then
    rm -f /usr/sbin/policy-rc.d
    POLICY_RC_D_OURS=""
  fi
}
trap on_exit EXIT

[[ "$(id -u)" -eq 0 ]] || fail "must run as root" "sudo bash scripts/test-env.sh"
[[ -d "$FIXTURES" ]] || fail "no image fixtures at $FIXTURES"
mkdir -p "$STATE_DIR"
chmod 700 "$STATE_DIR"

# Two engineers running this at once would start two registries; the second waits here.
# Background daemons started below close fd 9 (9>&-), or they would hold the lock forever.
exec 9>"$STATE_DIR/test-env.lock"
flock -w 300 9 || fail "another scripts/test-env.sh has held $STATE_DIR/test-env.lock for 5 min"

# --- 1. packages ---------------------------------------------------------------------------

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    say "packages: all present (${APT_PACKAGES[*]})"
  else
    say "packages: installing ${missing[*]}"
    apt-get update -qq || fail "apt-get update failed" "check the apt sources and the network"
    # Under systemd, installing docker-registry would start the Debian service on :5000 (with
    # its own config and auth) and take the test registry's port, and prometheus and
    # prometheus-node-exporter would start on :9090 and :9100; policy-rc.d stops that.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\n# Written by scripts/test-env.sh during apt-get install.\nexit 101\n' \
        >/usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      POLICY_RC_D_OURS=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
      >>"$STATE_DIR/apt.log" 2>&1 || fail "apt-get install ${missing[*]} failed" "see $STATE_DIR/apt.log"
    remove_policy_rc_d
    if [[ " ${missing[*]} " == *" docker-registry "* ]] && [[ -d /run/systemd/system ]]; then
      # Keep it from taking :5000 at the next boot too.
      systemctl disable docker-registry.service >/dev/null 2>&1 || true
      say "packages: disabled the Debian docker-registry service (the tests run their own)"
    fi
    if [[ -d /run/systemd/system ]]; then
      # Nothing system-wide: the metrics tests start their own node_exporter and Prometheus on
      # 127.0.0.1 with ephemeral ports and stop them.
      for unit in prometheus prometheus-node-exporter; do
        if [[ " ${missing[*]} " == *" $unit "* ]]; then
          systemctl disable --now "$unit.service" >/dev/null 2>&1 || true
        fi
      done
    fi
    say "packages: installed ${missing[*]}"
  fi

  if command -v deno >/dev/null 2>&1; then
    say "deno: present ($(command -v deno))"
  else
    command -v npm >/dev/null 2>&1 || fail "deno is missing and so is npm to install it" \
      "install Node.js/npm, or put deno on PATH"
    say "deno: installing $DENO_NPM_PACKAGE with npm"
    npm install -g --no-fund --no-audit "$DENO_NPM_PACKAGE" >>"$STATE_DIR/npm.log" 2>&1 \
      || fail "npm install -g $DENO_NPM_PACKAGE failed" "see $STATE_DIR/npm.log"
    hash -r
    command -v deno >/dev/null 2>&1 \
      || fail "npm installed $DENO_NPM_PACKAGE but deno is not on PATH" \
        "add \$(npm prefix -g)/bin to PATH"
  fi
}

# --- 2. the Docker daemon ------------------------------------------------------------------

wait_for_docker() { # seconds, dockerd pid, log size before the start
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    docker info >/dev/null 2>&1 && return 0
    if [[ -n "$2" ]] && ! kill -0 "$2" 2>/dev/null; then
      fail "dockerd exited: $(tail -c "+$((${3:-0} + 1))" "$DOCKERD_LOG" | grep -v '^time=' | tail -n 2 | tr '\n' ' ')" \
        "see $DOCKERD_LOG"
    fi
    sleep 0.5
  done
  return 1
}

start_dockerd() {
  if docker info >/dev/null 2>&1; then
    say "dockerd: running ($(docker version --format 'Engine {{.Server.Version}}, API {{.Server.APIVersion}}'))"
    return
  fi
  local pid="" log_size=0
  [[ -f /var/run/docker.pid ]] && pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
  if [[ -n "$pid" ]] && grep -qs dockerd "/proc/$pid/comm"; then
    # A daemon that is still starting; a second one would fail on the pid file anyway.
    say "dockerd: pid $pid exists but does not answer yet; waiting"
  else
    if [[ -f /var/run/docker.pid ]]; then
      say "dockerd: removing stale /var/run/docker.pid (pid ${pid:-?} is gone)"
      rm -f /var/run/docker.pid
    fi
    command -v dockerd >/dev/null 2>&1 || fail "dockerd not found" "apt-get install docker.io"
    say "dockerd: starting (log $DOCKERD_LOG)"
    log_size="$(stat -c %s "$DOCKERD_LOG" 2>/dev/null || echo 0)"
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
    pid=$!
  fi
  wait_for_docker 60 "$pid" "$log_size" || fail "dockerd did not answer within 60 s" "see $DOCKERD_LOG"
  say "dockerd: up ($(docker version --format 'Engine {{.Server.Version}}, API {{.Server.APIVersion}}'))"
}

# --- 3. the registry -----------------------------------------------------------------------

registry_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$REGISTRY/v2/" || true; }

write_if_changed() { # path, content: rewrites only on change so the file's mtime stays put
  local path=$1 content=$2
  if [[ ! -f "$path" ]] || [[ "$(cat "$path")" != "$content" ]]; then
    printf '%s\n' "$content" >"$path.tmp"
    mv "$path.tmp" "$path"
  fi
}

start_registry() {
  mkdir -p "$REGISTRY_STORAGE"
  if [[ ! -s "$REGISTRY_HTPASSWD" ]] \
    || ! htpasswd -vb "$REGISTRY_HTPASSWD" "$REGISTRY_USER" "$REGISTRY_PASSWORD" >/dev/null 2>&1; then
    htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD" >"$REGISTRY_HTPASSWD"
  fi
  # Our own config: /etc/docker/registry/config.yml belongs to the Debian service.
  write_if_changed "$REGISTRY_CONFIG" "# Written by scripts/test-env.sh; the test registry, not the Debian service.
version: 0.1
log:
  level: info
  fields:
    service: hyperbot-test-registry
storage:
  filesystem:
    rootdirectory: $REGISTRY_STORAGE
  delete:
    enabled: true
http:
  addr: $REGISTRY
  secret: hyperbot-test-registry-secret
auth:
  htpasswd:
    realm: hyperbot-test
    path: $REGISTRY_HTPASSWD"

  local status
  status="$(registry_status)"
  if [[ "$status" == 401 ]]; then
    say "registry: running on $REGISTRY"
    return
  fi
  [[ "$status" == 000 ]] || fail "something on $REGISTRY answers /v2/ with HTTP $status, not 401" \
    "stop it (the Debian docker-registry service?) so the test registry can bind the port"

  say "registry: starting on $REGISTRY (log $REGISTRY_LOG)"
  setsid nohup /usr/bin/docker-registry serve "$REGISTRY_CONFIG" >>"$REGISTRY_LOG" 2>&1 </dev/null 9>&- &
  echo $! >"$REGISTRY_PIDFILE"
  local deadline=$((SECONDS + 15))
  while [[ "$(registry_status)" != 401 ]]; do
    if ! kill -0 "$(cat "$REGISTRY_PIDFILE")" 2>/dev/null; then
      fail "the registry exited at once" "see $REGISTRY_LOG"
    fi
    ((SECONDS < deadline)) || fail "the registry did not answer on $REGISTRY within 15 s" "see $REGISTRY_LOG"
    sleep 0.2
  done
  say "registry: up (pid $(cat "$REGISTRY_PIDFILE"))"
}

# --- 4. login ------------------------------------------------------------------------------

login() {
  mkdir -p "$DOCKER_CONFIG_DIR"
  chmod 700 "$DOCKER_CONFIG_DIR"
  local out
  out="$(printf '%s' "$REGISTRY_PASSWORD" \
    | docker --config "$DOCKER_CONFIG_DIR" login "$REGISTRY" -u "$REGISTRY_USER" --password-stdin 2>&1)" \
    || fail "docker login $REGISTRY failed: $out" \
      "see $REGISTRY_LOG; is another registry (the Debian docker-registry service?) on :5000?"
  say "login: $REGISTRY_USER@$REGISTRY (DOCKER_CONFIG=$DOCKER_CONFIG_DIR)"
}

# --- 5. images -----------------------------------------------------------------------------

hash_dir() { # folder -> sha256 of every file's name and content
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-64
}

registry_curl() { curl -fsS --max-time 5 -u "$REGISTRY_USER:$REGISTRY_PASSWORD" "$@"; }

# Prints the build-hash label of REPOSITORY:tag as the registry holds it, or nothing.
registry_build_hash() {
  local manifest config_digest
  manifest="$(registry_curl -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY/v2/hyperbot/app/manifests/$1" 2>/dev/null)" || return 0
  config_digest="$(printf '%s' "$manifest" | tr -d ' \t\r\n' \
    | sed -n 's/.*"config":{[^}]*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p')"
  [[ -n "$config_digest" ]] || return 0
  registry_curl "http://$REGISTRY/v2/hyperbot/app/blobs/$config_digest" 2>/dev/null \
    | tr -d ' \t\r\n' | grep -o "\"$HASH_LABEL\":\"[0-9a-f]*\"" | head -n1 | cut -d'"' -f4 || true
}

# The legacy builder: the daemon is Engine 20.10 and buildx may be absent; it needs no network.
docker_build() { DOCKER_BUILDKIT=0 docker build "$@" >>"$BUILD_LOG" 2>&1; }

build_base() { # base hash
  local ctx
  if [[ "$(docker image inspect -f "{{index .Config.Labels \"$HASH_LABEL\"}}" "$BASE_IMAGE" 2>/dev/null)" == "$1" ]]; then
    return
  fi
  [[ -x /bin/busybox ]] || fail "/bin/busybox is missing" "apt-get install busybox-static"
  ctx="$(mktemp -d "$STATE_DIR/build.XXXXXX")"
  cp "$FIXTURES/base/Dockerfile" /bin/busybox "$ctx/"
  docker_build --label "$HASH_LABEL=$1" -t "$BASE_IMAGE" "$ctx" \
    || { rm -rf "$ctx"; fail "building $BASE_IMAGE failed" "see $BUILD_LOG"; }
  rm -rf "$ctx"
  say "images: built $BASE_IMAGE"
}

build_images() {
  local base_hash tag hash built=0 stale=()
  declare -A want
  base_hash="$( (hash_dir "$FIXTURES/base"; sha256sum /bin/busybox | cut -c1-64) | sha256sum | cut -c1-64)"
  for tag in "${IMAGE_TAGS[@]}"; do
    [[ -f "$FIXTURES/$tag/Dockerfile" ]] || fail "missing $FIXTURES/$tag/Dockerfile"
    want[$tag]="$(printf '%s %s' "$base_hash" "$(hash_dir "$FIXTURES/$tag")" | sha256sum | cut -c1-64)"
    [[ "$(registry_build_hash "$tag")" == "${want[$tag]}" ]] || stale+=("$tag")
  done
  if ((${#stale[@]} == 0)); then
    say "images: all ${#IMAGE_TAGS[@]} up to date in $REPOSITORY (${IMAGE_TAGS[*]})"
    return
  fi

  : >"$BUILD_LOG"
  say "images: building ${stale[*]} (log $BUILD_LOG)"
  build_base "$base_hash"
  for tag in "${stale[@]}"; do
    hash="${want[$tag]}"
    docker_build --label "$HASH_LABEL=$hash" -t "$REPOSITORY:$tag" "$FIXTURES/$tag" \
      || fail "building $REPOSITORY:$tag failed" "see $BUILD_LOG"
    docker --config "$DOCKER_CONFIG_DIR" push "$REPOSITORY:$tag" >>"$BUILD_LOG" 2>&1 \
      || fail "pushing $REPOSITORY:$tag failed" "see $BUILD_LOG and $REGISTRY_LOG"
    [[ "$(registry_build_hash "$tag")" == "$hash" ]] \
      || fail "the registry does not show the new $REPOSITORY:$tag after the push" "see $REGISTRY_LOG"
    say "images: built and pushed $REPOSITORY:$tag"
    built=$((built + 1))
  done
  say "images: $built rebuilt, $((${#IMAGE_TAGS[@]} - built)) already up to date"
}

STEP="installing packages"
install_packages
STEP="starting dockerd"
start_dockerd
STEP="starting the registry"
start_registry
STEP="logging in to the registry"
login
STEP="building the test images"
build_images
say "ready in ${SECONDS}s: registry $REGISTRY, images $REPOSITORY:{$(IFS=,; echo "${IMAGE_TAGS[*]}")}"
