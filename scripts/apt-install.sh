#!/usr/bin/env bash
# Installs Debian packages for the project's checks without starting their
# services: a CI container has no init system, and a package's own daemon
# (prometheus, etcd) must not take the ports the tests use. Needs root (or
# sudo) and apt. Usage: scripts/apt-install.sh PACKAGE...
set -euo pipefail

[ "$#" -gt 0 ] || { echo "apt-install: name at least one package" >&2; exit 2; }
if ! command -v apt-get >/dev/null 2>&1; then
  echo "apt-install: apt-get not found; install $* by hand" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "apt-install: installing $* needs root (or sudo)" >&2
    exit 1
  fi
fi

# Tell invoke-rc.d not to start services from the packages' postinst,
# unless a policy exists already.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  ADDED_POLICY=1
fi
cleanup() { if [ -n "$ADDED_POLICY" ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

APT=($SUDO env DEBIAN_FRONTEND=noninteractive apt-get)
"${APT[@]}" update -qq
"${APT[@]}" install -y -qq --no-install-recommends "$@" >/dev/null
