#!/usr/bin/env bash
# install-deps.sh - the one list of packages jobman needs on Debian 12 (build,
# tests, demo).  Uses sudo only when not root; does nothing when every
# package is already installed.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config
    libzmq3-dev libczmq-dev libmsgpack-dev libyaml-dev libsodium-dev
    libssl-dev libsqlite3-dev libcmocka-dev
    jq procps
    clang libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} = 0 ]; then
    echo "install-deps: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi
SUDO=
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
