#!/usr/bin/env bash
# Builds the serde guest (a WASI command using serde_json) with Debian's cargo, offline
# -> guest-examples/out/serde-greet.wasm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/../debian-cargo.sh" "$here" serde-greet.wasm serde-greet.wasm
echo "built rust-serde (serde_json) -> out/serde-greet.wasm"
