#!/usr/bin/env bash
# Builds the example guests and starts `weir dev` on the example functions in ./functions.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
./guest-examples/build.sh
cargo run --release --bin weir -- dev "$@"
