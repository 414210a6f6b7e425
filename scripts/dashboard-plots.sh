#!/usr/bin/env bash
# Regenerates docs/images/dashboard-*.svg: a few dashboard panels as a real
# Prometheus (Debian's `prometheus`) saw a short run of real sidecars, one
# of them stopped half way (operator/tests/dashboards.rs,
# every_dashboard_query_returns_data_from_a_real_prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/images
FABRIC_DASHBOARD_PLOTS="$PWD/docs/images" REQUIRE_PROMTOOL=1 \
  cargo test -q -p operator --test dashboards every_dashboard_query_returns_data_from_a_real_prometheus
ls -1 docs/images/dashboard-*.svg
