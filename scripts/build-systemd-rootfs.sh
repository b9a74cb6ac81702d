#!/usr/bin/env bash
# Builds the image the end-to-end suite boots a real systemd in (test/e2e/systemd_test.ts):
# a Debian bookworm rootfs made with debootstrap, imported into Docker as hyperbot-systemd:bookworm.
#
# Usage: scripts/build-systemd-rootfs.sh [--force]
#   --force   rebuild even when the image exists (otherwise the cached image is kept)
# Env: HYPERBOT_SYSTEMD_IMAGE (default hyperbot-systemd:bookworm)
#      HYPERBOT_DEBIAN_MIRROR (default: the first Debian URI in the apt sources, else deb.debian.org)
# docker import cannot set STOPSIGNAL: run it with --stop-signal=SIGRTMIN+3.
# Needs root, debootstrap and a reachable Debian mirror. Takes about 90 s.
set -euo pipefail

IMAGE="${HYPERBOT_SYSTEMD_IMAGE:-hyperbot-systemd:bookworm}"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

if [[ $FORCE -eq 0 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "build-systemd-rootfs: $IMAGE exists, nothing to do (use --force to rebuild)"
  exit 0
fi

die() { echo "build-systemd-rootfs: error: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap needs it)"
command -v debootstrap >/dev/null || die "debootstrap not found; hint: apt-get install debootstrap"
command -v docker >/dev/null || die "docker CLI not found"

mirror="${HYPERBOT_DEBIAN_MIRROR:-}"
if [[ -z "$mirror" ]]; then
  mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | head -1 | awk '{print $2}' || true)
  mirror="${mirror:-http://deb.debian.org/debian}"
fi

work=$(mktemp -d /var/tmp/hyperbot-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

echo "build-systemd-rootfs: debootstrap bookworm from $mirror"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,cron,procps,dbus,curl,ca-certificates \
  bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -30 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# A container has no consoles, no udev and no kernel modules to load; these units only fail there.
for unit in getty@tty1.service console-getty.service serial-getty@.service getty.target \
  systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
  systemd-remount-fs.service systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_reap.service systemd-timesyncd.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# Journal to the console too, so `docker logs` shows what systemd did.
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nForwardToConsole=yes\nStorage=volatile\n' >"$root/etc/systemd/journald.conf.d/e2e.conf"
# An empty machine-id lets systemd make one per boot.
: >"$root/etc/machine-id"
echo "hbt-e2e" >"$root/etc/hostname"
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*

echo "build-systemd-rootfs: importing as $IMAGE"
tar -C "$root" --numeric-owner -c . | docker import \
  --change 'ENV container=docker' \
  --change 'CMD ["/sbin/init"]' \
  - "$IMAGE" >/dev/null
echo "build-systemd-rootfs: built $IMAGE"
