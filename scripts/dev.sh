#!/usr/bin/env bash
# Builds the example guests and starts `weir dev` on the example functions in ./functions.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# One build of weir: the release binary componentizes the WAT guests and then serves.
cargo build --release --bin weir
weir="${CARGO_TARGET_DIR:-$root/target}/release/weir"
WEIR_BIN="$weir" ./guest-examples/build.sh
exec "$weir" dev "$@"
