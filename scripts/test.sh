#!/usr/bin/env bash
# The whole test suite: builds the example guests from source, then runs every unit,
# integration and bench-smoke test against the real binary and real wasm.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
./guest-examples/build.sh
# The UI tests drive a real headless Chromium.
./scripts/need.sh "the UI tests drive a real headless browser" chromium
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --all-targets --features fuzzing "$@" 2>&1 | tee "$log" || status=$?
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .* ([0-9]+) failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
