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
    openssh-server openssh-client iproute2
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
# openssh-server is here only for /usr/sbin/sshd: tests/e2e_tunnel.sh starts
# its own sshd (own config, keys and port, inside a network namespace it
# makes).  Installing the package must not leave a system sshd running, so
# when no policy-rc.d exists one refusing every service start (exit 101) is
# in place for the duration of the install.  (Where one exists - Debian
# containers such as this project's test machine ship one that blocks
# starts - it is left alone.)
POLICY=/usr/sbin/policy-rc.d
own_policy=0
if [[ " ${missing[*]} " == *" openssh-server "* ]] && [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# install-deps.sh: no service starts while installing\nexit 101\n' \
        | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    own_policy=1
    trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
if [ $own_policy = 1 ]; then
    $SUDO rm -f "$POLICY"
    trap - EXIT
fi
