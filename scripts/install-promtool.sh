#!/usr/bin/env bash
# Installs promtool (Prometheus' checker for the metrics exposition format)
# on a Debian/Ubuntu machine, for the `promtool check metrics` test in
# routing-sidecar/tests/promtool.rs. Idempotent: does nothing when promtool
# is already on PATH. Needs root (or sudo) and apt access.
#
# Debian ships promtool in the `prometheus` package (bookworm: 2.42, about
# 19 MB to download). Only promtool is used; the package's server is not
# started here (scripts/apt-install.sh), and recommended packages are skipped.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  echo "promtool already installed: $(command -v promtool)"
  promtool --version 2>&1 | head -n 1
  exit 0
fi

bash "$(dirname "$0")/apt-install.sh" prometheus

if ! command -v promtool >/dev/null 2>&1; then
  echo "install-promtool: the prometheus package did not provide promtool on PATH" >&2
  exit 1
fi
echo "promtool installed: $(command -v promtool)"
promtool --version 2>&1 | head -n 1
