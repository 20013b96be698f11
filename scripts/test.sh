#!/usr/bin/env bash
# The whole test suite: builds the example guests from source, then runs every unit,
# integration and bench-smoke test against the real binary and real wasm.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
./guest-examples/build.sh
cargo test --all-targets "$@"
