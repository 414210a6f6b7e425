#!/usr/bin/env bash
# Installs promtool (Prometheus' checker for the metrics exposition format)
# on a Debian/Ubuntu machine, for the `promtool check metrics` test in
# routing-sidecar/tests/promtool.rs. Idempotent: does nothing when promtool
# is already on PATH. Needs root (or sudo) and apt access.
#
# Debian ships promtool in the `prometheus` package (bookworm: 2.42, about
# 19 MB to download). Only promtool is used; the package's server is not
# started here (policy-rc.d below), and recommended packages are skipped.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  echo "promtool already installed: $(command -v promtool)"
  promtool --version 2>&1 | head -n 1
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-promtool: apt-get not found; install promtool by hand (https://prometheus.io/download/)" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-promtool: must run as root (or with sudo available)" >&2
    exit 1
  fi
fi

# A CI container has no init system: tell invoke-rc.d not to start the
# prometheus service from the package's postinst, unless a policy exists.
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
"${APT[@]}" install -y -qq --no-install-recommends prometheus >/dev/null

if ! command -v promtool >/dev/null 2>&1; then
  echo "install-promtool: the prometheus package did not provide promtool on PATH" >&2
  exit 1
fi
echo "promtool installed: $(command -v promtool)"
promtool --version 2>&1 | head -n 1
