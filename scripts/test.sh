#!/usr/bin/env bash
# The whole test suite: builds the example guests from source, runs every unit,
# integration and bench-smoke test against the real binary and real wasm, then fuzzes
# the real binary's HTTP API with schemathesis (scripts/schemathesis.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
./guest-examples/build.sh
# The UI tests drive a real headless Chromium; the docker step tests start their own
# dockerd and import a busybox image; the lambda step tests start moto's server.
./scripts/need.sh "the UI tests drive a real headless browser" chromium
./scripts/need.sh "the Redis backend tests run a real redis-server and make a cluster with redis-cli" redis-server redis-tools
./scripts/need.sh "the docker step tests run a private Docker engine with a busybox image" docker.io busybox-static
WEIR_MOTO_SERVER="$(./scripts/moto.sh | tail -n 1)"
export WEIR_MOTO_SERVER
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --all-targets --features fuzzing "$@" 2>&1 | tee "$log" || status=$?
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .* ([0-9]+) failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')

cargo_summary="cargo test: ${passed} passed, ${failed} failed"

# schemathesis counts as one more test: it passes when no generated request got a 5xx
# and every reply was as documented. It needs the binary the cargo tests just built.
echo
if ((status == 0)); then
  if ./scripts/schemathesis.sh; then
    passed=$((passed + 1))
    schemathesis="passed"
  else
    failed=$((failed + 1))
    status=1
    schemathesis="failed"
  fi
else
  schemathesis="not run (the cargo tests failed)"
fi
echo
echo "${cargo_summary}; schemathesis: ${schemathesis}"
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
