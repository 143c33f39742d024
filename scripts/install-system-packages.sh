#!/usr/bin/env bash
# Installs the system packages swift-loops builds against (libsystemd-dev, pkg-config) and the
# PostgreSQL server the LoopsPostgres tests start for themselves (postgresql), when they are
# missing. Idempotent; uses sudo when not root.
set -euo pipefail

missing=()
for package in libsystemd-dev pkg-config postgresql; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing missing system packages: ${missing[*]}" >&2
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
export DEBIAN_FRONTEND=noninteractive
run apt-get update -qq
run apt-get install -y -qq "${missing[@]}" >/dev/null
