#!/usr/bin/env bash
# Installs what the tests need from Debian's packages when it is missing: the third-party peer
# servers (bindfs, fuse-overlayfs, mergerfs), fusermount3, the toolchain ptfs builds with, valgrind
# for its leak check, Chromium for the comparison page test, and what a User-Mode Linux kernel
# builds from (flex, bison, bc, Debian's linux-source-6.12; iproute2 brings the guest's loopback
# up). Runs before `npm test`; does nothing when everything is there.
set -euo pipefail
need=()
for p in bindfs fuse-overlayfs mergerfs fuse3 make gcc valgrind chromium clang libbpf-dev libelf-dev zlib1g-dev bpftool flex bison bc linux-source-6.12 iproute2; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
[ "${#need[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-deps: missing Debian packages: ${need[*]} (install them as root: apt-get install ${need[*]})" >&2
  exit 0 # the tests that need them skip with that reason, or fail under FUSECERT_STRICT
fi
echo "install-deps: apt-get install ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
