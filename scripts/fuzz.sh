#!/usr/bin/env bash
# Runs every cargo-fuzz target of operator/fuzz for a while on a copy of its
# committed corpus (docs/fuzzing.md). CI: `scripts/fuzz.sh --ci` (a few
# seconds each). By hand: `scripts/fuzz.sh --seconds 3600 [TARGET...]`.
# New inputs and crashes go to a scratch folder (printed), never into the
# tree; a crash fails the run and names the file to keep as a regression.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --ci) seconds=${FUZZ_SECONDS:-8}; shift ;;
    --seconds) seconds=$2; shift 2 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=(wire_decode session_frames config_load control_messages admission_review)
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked --quiet
fi
# libFuzzer's instrumentation needs nightly flags: a nightly toolchain if
# rustup has one, else the stable one with RUSTC_BOOTSTRAP.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
  echo "fuzz.sh: toolchain nightly ($(rustup run nightly rustc --version))"
else
  toolchain=(+stable)
  export RUSTC_BOOTSTRAP=1
  echo "fuzz.sh: no nightly toolchain; stable with RUSTC_BOOTSTRAP=1 ($(rustc --version))"
fi
# No sanitizer (the code is safe Rust; libFuzzer's coverage is what finds
# inputs) and a dev build (fast to compile; debug assertions on).
flags=(--fuzz-dir operator/fuzz --features libfuzzer --sanitizer none --dev)

scratch=$(mktemp -d)
echo "fuzz.sh: building the targets; corpus copies and artifacts in $scratch"
cargo "${toolchain[@]}" fuzz build "${flags[@]}"
status=0
for target in "${targets[@]}"; do
  cp -r "operator/fuzz/corpus/$target" "$scratch/$target"
  mkdir -p "$scratch/artifacts/$target"
  log="$scratch/$target.log"
  if cargo "${toolchain[@]}" fuzz run "${flags[@]}" "$target" "$scratch/$target" -- \
      -max_total_time="$seconds" -artifact_prefix="$scratch/artifacts/$target/" >"$log" 2>&1; then
    echo "fuzz.sh: $target: $(grep -E '^Done [0-9]+ runs' "$log" || echo 'ran') ($seconds s, no crash)"
  else
    status=1
    echo "fuzz.sh: $target: FAILED; artifacts:"
    ls -1 "$scratch/artifacts/$target"
    tail -n 30 "$log"
  fi
done
exit $status
