#!/usr/bin/env bash
# Regenerates docs/soak/: the CSV files and charts of docs/soak.md.
#
# 1,000 nodes on each of the three fabrics, both protocols, 3 simulated
# hours, unsigned (signature checks would dominate the run: every
# path-vector hop re-signs and every receiver verifies), then the same
# schedule shape on 200 nodes with signatures required and forged and
# unsigned announcements injected. Deterministic: the same command gives
# the same files. About 15-25 minutes on a shared 2-core VM.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/soak/signed
cargo run --release -p routing-sidecar -- soak --nodes 1000 --seed 1 --duration 3h --events 36 \
    --signatures off --out docs/soak | tee docs/soak/summary.txt
cargo run --release -p routing-sidecar -- soak --nodes 200 --seed 1 --duration 3h --events 36 \
    --signatures required --out docs/soak/signed | tee docs/soak/signed/summary.txt
