#!/usr/bin/env bash
# Builds the typed Rust guest (world typed-step: exports weir:step/handler.run, calls
# host.log and host.send-event) with Debian's cargo, offline, as a core module ->
# guest-examples/out/typed-fanout.wasm. weir wraps it into a typed-step component when it
# is uploaded (`weir componentize` shows the same).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/../debian-cargo.sh" "$here" typed_fanout.wasm typed-fanout.wasm
echo "built rust-typed (typed-step) -> out/typed-fanout.wasm"
